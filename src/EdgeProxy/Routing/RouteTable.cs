using System.Collections.Frozen;
using System.Diagnostics.CodeAnalysis;
using EdgeProxy.Balancing;
using EdgeProxy.Configuration;
using EdgeProxy.Health;

namespace EdgeProxy.Routing;

/// <summary>
/// The immutable routing snapshot: service -> model -> <see cref="ModelRoute"/>. Built once per
/// config (start or reload) and swapped atomically by <see cref="RouteTableProvider"/>; the request
/// path looks models up by span without allocating.
/// </summary>
internal sealed class RouteTable
{
    /// <summary>Span lookups at both levels, made once per snapshot (making one per request showed in the fast path's profile).</summary>
    private readonly FrozenDictionary<string, FrozenDictionary<string, ModelRoute>.AlternateLookup<ReadOnlySpan<char>>>.AlternateLookup<ReadOnlySpan<char>> _serviceLookup;

    private RouteTable(BackendsConfig config, IReadOnlyList<ModelRoute> models, FrozenDictionary<string, FrozenDictionary<string, ModelRoute>> services)
    {
        Config = config;
        Models = models;
        _serviceLookup = services
            .ToFrozenDictionary(pair => pair.Key, pair => pair.Value.GetAlternateLookup<ReadOnlySpan<char>>(), services.Comparer)
            .GetAlternateLookup<ReadOnlySpan<char>>();
    }

    public BackendsConfig Config { get; }

    /// <summary>Every model in config order (services, then models).</summary>
    public IReadOnlyList<ModelRoute> Models { get; }

    public IEnumerable<BackendState> States => Models.SelectMany(m => m.Backends.Select(b => b.State));

    /// <summary>Each model's wait line, for the status document.</summary>
    public IEnumerable<(string Service, string Model, QueueStatus Status)> Queues => Models.Select(m => (m.Service, m.Model, m.Queue.Status()));

    public bool TryGetModel(ReadOnlySpan<char> service, ReadOnlySpan<char> model, [NotNullWhen(true)] out ModelRoute? route)
    {
        if (_serviceLookup.TryGetValue(service, out var models))
        {
            return models.TryGetValue(model, out route);
        }
        route = null;
        return false;
    }

    public bool HasService(ReadOnlySpan<char> service) => _serviceLookup.ContainsKey(service);

    /// <summary>
    /// Builds a snapshot. Backends whose (service, model, id, url) also exist in
    /// <paramref name="previous"/> keep their <see cref="BackendState"/> — health, ejection and
    /// counters survive a reload; everything else starts as unknown.
    /// </summary>
    public static RouteTable Build(BackendsConfig config, GatewaySettings settings, HealthPolicy policy, TimeProvider time, RouteTable? previous = null)
    {
        var oldStates = new Dictionary<(string, string, string, string), BackendState>();
        var oldQueues = new Dictionary<(string, string), AdmissionQueue>();
        var oldConversations = new Dictionary<(string, string), ConversationTable>();
        if (previous is not null)
        {
            foreach (var state in previous.States)
            {
                oldStates[(state.Service, state.Model, state.Config.Id, state.Config.Url)] = state;
            }
            foreach (var route in previous.Models)
            {
                oldQueues[(route.Service, route.Model)] = route.Queue;
                if (route.Conversations is { } conversations)
                {
                    oldConversations[(route.Service, route.Model)] = conversations;
                }
            }
        }

        var models = new List<ModelRoute>();
        var services = new Dictionary<string, FrozenDictionary<string, ModelRoute>>(StringComparer.Ordinal);
        foreach (var service in config.Services)
        {
            var byModel = new Dictionary<string, ModelRoute>(StringComparer.Ordinal);
            foreach (var model in service.Models)
            {
                var entries = new BackendEntry[model.Backends.Count];
                for (var i = 0; i < entries.Length; i++)
                {
                    var backend = model.Backends[i];
                    // One request per upstream connection: MAX_CONNECTIONS caps a backend's requests too.
                    var capacity = Math.Min(backend.MaxConcurrency ?? int.MaxValue, settings.MaxConnections);
                    if (oldStates.TryGetValue((service.Name, model.Name, backend.Id, backend.Url), out var state))
                    {
                        state.Update(backend, policy, capacity);
                    }
                    else
                    {
                        state = new BackendState(service.Name, model.Name, backend, policy, time, capacity);
                    }
                    var (headerName, headerValue) = UpstreamAuthModes.Header(backend, settings);
                    entries[i] = new BackendEntry(state, backend.Url, backend.Weight, headerName, headerValue);
                }
                if (oldQueues.TryGetValue((service.Name, model.Name), out var queue))
                {
                    queue.Configure(model.MaxQueue, model.QueueTimeoutOrDefault);
                }
                else
                {
                    queue = new AdmissionQueue(model.MaxQueue, model.QueueTimeoutOrDefault, time);
                }
                var route = new ModelRoute(service.Name, model.Name, entries, model.Affinity, settings.MaxEjectionPercent, model.Balance, model.BalanceFactor, queue,
                    oldConversations.GetValueOrDefault((service.Name, model.Name)));
                byModel[model.Name] = route;
                models.Add(route);
            }
            services[service.Name] = byModel.ToFrozenDictionary(StringComparer.Ordinal);
        }
        return new RouteTable(config, models, services.ToFrozenDictionary(StringComparer.Ordinal));
    }
}
