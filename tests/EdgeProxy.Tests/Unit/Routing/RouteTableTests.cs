using EdgeProxy.Configuration;
using EdgeProxy.Health;
using EdgeProxy.Routing;
using Microsoft.Extensions.Time.Testing;

namespace EdgeProxy.Tests.Unit.Routing;

/// <summary>Snapshot building: lookups, state kept across reloads, and the upstream key precedence.</summary>
public sealed class RouteTableTests
{
    private readonly FakeTimeProvider _time = UnitFixtures.Clock();
    private readonly GatewaySettings _settings = new();
    private readonly HealthPolicy _policy = UnitFixtures.Policy();

    private static BackendsConfig TwoModels(params BackendConfig[] gemmaBackends) => new(
    [
        new ServiceConfig("google", [new ModelConfig("gemma", gemmaBackends, AffinityConfig.ClientIp)]),
        new ServiceConfig("openai", [new ModelConfig("gpt-4", [UnitFixtures.Backend("o1")], new AffinityConfig(AffinityKind.None))]),
    ]);

    private RouteTable Build(BackendsConfig config, RouteTable? previous = null)
        => RouteTable.Build(config, _settings, _policy, _time, previous);

    private static BackendState State(RouteTable table, string service, string model, string id)
    {
        Assert.True(table.TryGetModel(service, model, out var route));
        return route.Backends.Single(b => b.Id == id).State;
    }

    [Fact]
    public void Looks_up_models_by_span_and_knows_its_services()
    {
        var table = Build(TwoModels(UnitFixtures.Backend("g1"), UnitFixtures.Backend("g2", weight: 3)));
        Assert.True(table.TryGetModel("google".AsSpan(), "gemma".AsSpan(), out var route));
        Assert.Equal(("google", "gemma", "google/gemma"), (route.Service, route.Model, route.RouteLabel));
        Assert.Equal(["g1", "g2"], route.Backends.Select(b => b.Id));
        Assert.Equal([1, 3], route.Backends.Select(b => b.Weight));
        Assert.NotNull(route.Affinity);
        Assert.True(table.TryGetModel("openai", "gpt-4", out var gpt));
        Assert.Null(gpt.Affinity);

        Assert.False(table.TryGetModel("google", "gpt-4", out _));
        Assert.False(table.TryGetModel("Google", "gemma", out _));
        Assert.False(table.TryGetModel("nope", "gemma", out _));
        Assert.True(table.HasService("openai"));
        Assert.True(table.HasService("openai".AsSpan()));
        Assert.False(table.HasService("anthropic"));
        Assert.Equal(2, table.Models.Count);
        Assert.Equal(3, table.States.Count());
    }

    [Fact]
    public void Unchanged_backends_keep_their_state_across_a_rebuild()
    {
        var first = Build(TwoModels(UnitFixtures.Backend("g1"), UnitFixtures.Backend("g2")));
        var g1 = State(first, "google", "gemma", "g1");
        UnitFixtures.MarkUnhealthy(g1);
        g1.TryStart();
        g1.ReportFailure(trial: false, connectionFailure: true, () => true);

        // Same backends, new weight and display name, one more backend.
        var second = Build(TwoModels(UnitFixtures.Backend("g1", weight: 4) with { Name = "renamed" }, UnitFixtures.Backend("g2"), UnitFixtures.Backend("g3")), first);
        var kept = State(second, "google", "gemma", "g1");
        Assert.Same(g1, kept);
        Assert.Equal(HealthStatus.Unhealthy, kept.Status);
        Assert.True(kept.IsEjected);
        Assert.Equal(1, kept.InFlight);
        Assert.Equal("renamed", kept.Config.Name);
        Assert.Equal(4, kept.Config.Weight);
        Assert.Same(State(first, "google", "gemma", "g2"), State(second, "google", "gemma", "g2"));
        Assert.Same(State(first, "openai", "gpt-4", "o1"), State(second, "openai", "gpt-4", "o1"));
        Assert.Equal(HealthStatus.Unknown, State(second, "google", "gemma", "g3").Status);
    }

    [Fact]
    public void A_changed_url_gets_a_fresh_state()
    {
        var first = Build(TwoModels(UnitFixtures.Backend("g1", url: "http://10.0.0.1:5000"), UnitFixtures.Backend("g2")));
        UnitFixtures.MarkUnhealthy(State(first, "google", "gemma", "g1"));
        var second = Build(TwoModels(UnitFixtures.Backend("g1", url: "http://10.0.0.9:5000"), UnitFixtures.Backend("g2")), first);
        var fresh = State(second, "google", "gemma", "g1");
        Assert.NotSame(State(first, "google", "gemma", "g1"), fresh);
        Assert.Equal(HealthStatus.Unknown, fresh.Status);
        Assert.Same(State(first, "google", "gemma", "g2"), State(second, "google", "gemma", "g2"));
    }

    [Fact]
    public void Same_id_and_url_under_another_model_is_another_backend()
    {
        var first = Build(TwoModels(UnitFixtures.Backend("o1")));
        var g = State(first, "google", "gemma", "o1");
        var o = State(first, "openai", "gpt-4", "o1");
        Assert.NotSame(g, o);
        UnitFixtures.MarkUnhealthy(g);
        Assert.Equal(HealthStatus.Unknown, o.Status);

        var second = Build(TwoModels(UnitFixtures.Backend("o1")), first);
        Assert.Same(g, State(second, "google", "gemma", "o1"));
        Assert.Same(o, State(second, "openai", "gpt-4", "o1"));
    }

    [Fact]
    public void A_removed_and_re_added_backend_starts_fresh()
    {
        var first = Build(TwoModels(UnitFixtures.Backend("g1"), UnitFixtures.Backend("g2")));
        var second = Build(TwoModels(UnitFixtures.Backend("g2")), first);
        var third = Build(TwoModels(UnitFixtures.Backend("g1"), UnitFixtures.Backend("g2")), second);
        Assert.NotSame(State(first, "google", "gemma", "g1"), State(third, "google", "gemma", "g1"));
        Assert.Same(State(first, "google", "gemma", "g2"), State(third, "google", "gemma", "g2"));
    }

    [Fact]
    public void Each_rebuild_has_its_own_round_robin_order_and_affinity_table()
    {
        var first = Build(TwoModels(UnitFixtures.Backend("g1"), UnitFixtures.Backend("g2")));
        var second = Build(TwoModels(UnitFixtures.Backend("g1", weight: 2), UnitFixtures.Backend("g2")), first);
        Assert.True(second.TryGetModel("google", "gemma", out var route));
        Assert.Equal([0, 1, 0], route.Sequence);
    }

    // ---- upstream key precedence ---------------------------------------------------------------

    public static TheoryData<string?, string?, string, string, string?, string?> AuthMatrix => new()
    {
        // backend api_key, backend auth_mode, BACKEND_API_KEY, BACKEND_AUTH_MODE -> header name, value
        { "bk", null, "gk", "Authorization", "Authorization", "Bearer bk" },
        { "bk", null, "gk", "XApiKey", "x-api-key", "bk" },
        { "bk", "XApiKey", "gk", "Authorization", "x-api-key", "bk" },
        { "bk", "Authorization", "gk", "XApiKey", "Authorization", "Bearer bk" },
        { "bk", null, "", "Authorization", "Authorization", "Bearer bk" },
        { "bk", "XApiKey", "", "Authorization", "x-api-key", "bk" },
        { null, null, "gk", "Authorization", "Authorization", "Bearer gk" },
        { null, null, "gk", "XApiKey", "x-api-key", "gk" },
        { null, "XApiKey", "gk", "Authorization", "x-api-key", "gk" },
        { null, "Authorization", "gk", "XApiKey", "Authorization", "Bearer gk" },
        { null, null, "", "Authorization", null, null },
        { null, "XApiKey", "", "XApiKey", null, null },
    };

    [Theory]
    [MemberData(nameof(AuthMatrix))]
    public void Upstream_key_backend_over_global_and_mode_backend_over_global(
        string? backendKey, string? backendModeName, string globalKey, string globalModeName, string? name, string? value)
    {
        UpstreamAuthMode? backendMode = backendModeName is null ? null : Enum.Parse<UpstreamAuthMode>(backendModeName);
        var globalMode = Enum.Parse<UpstreamAuthMode>(globalModeName);
        var backend = UnitFixtures.Backend("b", apiKey: backendKey, authMode: backendMode);
        var settings = new GatewaySettings { BackendApiKey = globalKey, BackendAuthMode = globalMode };
        Assert.Equal((name, value), UpstreamAuthModes.Header(backend, settings));

        // The snapshot carries the same header for the request path.
        var route = RouteTable.Build(UnitFixtures.Config("s", "m", AffinityConfig.ClientIp, backend), settings, _policy, _time).Models.Single();
        Assert.Equal((name, value), (route.Backends[0].AuthHeaderName, route.Backends[0].AuthHeaderValue));
    }
}
