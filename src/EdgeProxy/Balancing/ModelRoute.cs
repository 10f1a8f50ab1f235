using EdgeProxy.Configuration;
using EdgeProxy.Observability;

namespace EdgeProxy.Balancing;

/// <summary>
/// One model's backends in an immutable snapshot: the struct table, the precomputed smooth
/// round-robin order, the affinity table and the balancing policy. Only the round-robin cursor
/// changes after construction (in-flight counts live on each backend's <see cref="Health.BackendState"/>).
/// </summary>
internal sealed class ModelRoute
{
    private int _cursor = -1;

    public ModelRoute(
        string service,
        string model,
        BackendEntry[] backends,
        AffinityConfig affinity,
        double maxEjectionPercent,
        BalancePolicy balance = BalancePolicy.RoundRobin,
        double balanceFactor = ModelConfig.DefaultBalanceFactor,
        AdmissionQueue? queue = null,
        ConversationTable? conversations = null)
    {
        Queue = queue ?? new AdmissionQueue(ModelConfig.DefaultMaxQueue, ModelConfig.DefaultQueueTimeout, TimeProvider.System);
        Service = service;
        Model = model;
        Backends = backends;
        AffinityConfig = affinity;
        Balance = balance;
        BalanceFactor = balanceFactor;
        var weights = backends.Select(b => b.Weight).ToArray();
        Sequence = SmoothWeightedSequence.Build(weights);
        Affinity = affinity.Kind == AffinityKind.None ? null : AffinityTable.Build(backends.Select(b => b.Id).ToArray(), weights);
        Conversations = affinity.Kind == AffinityKind.Prefix ? conversations ?? new ConversationTable() : null;
        Tags = backends.Select(b => ConversationTable.TagOf(b.Id)).ToArray();
        MaxEjected = maxEjectionPercent <= 0 ? 0 : Math.Max(1, (int)Math.Floor(backends.Length * maxEjectionPercent / 100.0));
        RouteLabel = service + "/" + model;
        UnservedSeries = new RequestSeries(service, model, "-");
    }

    public string Service { get; }

    public string Model { get; }

    /// <summary>`service/model`, for logs.</summary>
    public string RouteLabel { get; }

    public BackendEntry[] Backends { get; }

    /// <summary>The request metrics of requests that reached no backend (backend "-").</summary>
    public RequestSeries UnservedSeries { get; }

    /// <summary>Requests waiting for a slot when every backend that may take them is full; shared by the model's snapshots.</summary>
    public AdmissionQueue Queue { get; }

    public int[] Sequence { get; }

    public AffinityTable? Affinity { get; }

    /// <summary>Where recent conversations were served ("prefix" affinity only); shared by the model's snapshots.</summary>
    public ConversationTable? Conversations { get; }

    /// <summary>Each backend's tag in <see cref="Conversations"/>.</summary>
    public ushort[] Tags { get; }

    public AffinityConfig AffinityConfig { get; }

    /// <summary>How requests without a usable affinity pick are spread.</summary>
    public BalancePolicy Balance { get; }

    /// <summary>A pinned key's backend is used while its in-flight load stays within this multiple of its weighted fair share.</summary>
    public double BalanceFactor { get; }

    /// <summary>How many of this model's backends passive health may hold ejected at once.</summary>
    public int MaxEjected { get; }

    public int NextCursor() => Interlocked.Increment(ref _cursor);

    /// <summary>Moves the cursor past round-robin turns a pick passed over (backends that were out).</summary>
    public void SkipCursor(int turns) => Interlocked.Add(ref _cursor, turns);

    /// <summary>Whether one more backend may be ejected without breaking the per-model cap.</summary>
    public bool MayEjectAnother()
    {
        var ejected = 0;
        foreach (var backend in Backends)
        {
            if (backend.State.IsEjected)
            {
                ejected++;
            }
        }
        return ejected < MaxEjected;
    }
}
