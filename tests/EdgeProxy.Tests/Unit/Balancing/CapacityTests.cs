using EdgeProxy.Balancing;
using EdgeProxy.Configuration;
using EdgeProxy.Health;
using Microsoft.Extensions.Time.Testing;

namespace EdgeProxy.Tests.Unit.Balancing;

/// <summary>
/// A backend at its capacity (max_concurrency, or MAX_CONNECTIONS) is full: picks pass it by, a
/// racing start cannot exceed it, and a model whose backends that may take a request are all full
/// is busy (the request waits) — never a reason to panic onto an unhealthy backend.
/// </summary>
public sealed class CapacityTests
{
    private readonly FakeTimeProvider _time = UnitFixtures.Clock();

    private ModelRoute Route(int?[] maxConcurrency, int maxConnections = 100, BalancePolicy balance = BalancePolicy.RoundRobin, AffinityKind affinity = AffinityKind.None)
    {
        var backends = maxConcurrency.Select((limit, i) => UnitFixtures.Backend($"b{i}") with { MaxConcurrency = limit }).ToArray();
        var config = new BackendsConfig([new ServiceConfig("svc", [new ModelConfig("m", backends, new AffinityConfig(affinity), balance)])]);
        return UnitFixtures.Route(_time, config, settings: new GatewaySettings { MaxConnections = maxConnections });
    }

    [Fact]
    public void Capacity_is_max_concurrency_or_MAX_CONNECTIONS_whichever_is_smaller()
    {
        var route = Route([2, null, 500], maxConnections: 100);
        Assert.Equal([2, 100, 100], route.Backends.Select(b => b.State.Capacity));
    }

    [Fact]
    public void An_engine_that_queues_sets_the_capacity_to_its_batch_and_one_that_keeps_up_gets_more()
    {
        var route = Route([null, 4], maxConnections: 100);
        var (learner, fixedOne) = (route.Backends[0].State, route.Backends[1].State);

        // Nothing waiting in the engine: nothing learnt, the capacity stays MAX_CONNECTIONS.
        learner.ObserveEngine(running: 3, waiting: 0);
        Assert.Null(learner.LearnedConcurrency);
        Assert.Equal(100, learner.Capacity);

        // Queueing while running 8: the engine batches 8.
        learner.ObserveEngine(running: 8, waiting: 2);
        Assert.Equal(8, learner.LearnedConcurrency);
        Assert.Equal(8, learner.Capacity);
        for (var i = 0; i < 8; i++)
        {
            Assert.True(learner.TryStart());
        }
        Assert.False(learner.TryStart());
        // A conversation coming home to its KV cache may wait in the engine's queue: up to 8 + 8/4.
        Assert.Equal(10, learner.HomeCapacity);
        Assert.True(learner.TryStart(home: true));
        Assert.True(learner.TryStart(home: true));
        Assert.False(learner.TryStart(home: true));
        learner.OnRequestEnd(error: false);
        learner.OnRequestEnd(error: false);

        // At its limit and the engine runs all of it with none waiting: one more.
        learner.ObserveEngine(running: 8, waiting: 0);
        Assert.Equal(9, learner.Capacity);
        Assert.True(learner.TryStart());
        // Below the limit, an empty engine queue says nothing new.
        learner.OnRequestEnd(error: false);
        learner.OnRequestEnd(error: false);
        learner.ObserveEngine(running: 7, waiting: 0);
        Assert.Equal(9, learner.Capacity);
        // Queueing again with fewer running (its KV cache is fuller): the limit follows it down.
        learner.ObserveEngine(running: 6, waiting: 1);
        Assert.Equal(6, learner.Capacity);
        // An engine that reports waiting but runs nothing (starting up) teaches nothing.
        learner.ObserveEngine(running: 0, waiting: 5);
        Assert.Equal(6, learner.Capacity);

        // max_concurrency is the operator's word: never learnt over, and MAX_CONNECTIONS still bounds a learnt limit.
        fixedOne.ObserveEngine(running: 2, waiting: 3);
        Assert.Null(fixedOne.LearnedConcurrency);
        Assert.Equal(4, fixedOne.Capacity);
        Assert.Equal(4, fixedOne.HomeCapacity);
        learner.ObserveEngine(running: 500, waiting: 1);
        Assert.Equal(100, learner.Capacity);
    }

    [Fact]
    public void Starts_never_exceed_capacity_even_when_racing()
    {
        var state = Route([8]).Backends[0].State;
        var started = 0;
        Parallel.For(0, 1000, new ParallelOptions { MaxDegreeOfParallelism = 4 }, _ =>
        {
            if (state.TryStart())
            {
                Interlocked.Increment(ref started);
            }
        });
        Assert.Equal(8, started);
        Assert.Equal(8, state.InFlight);
        Assert.False(state.HasRoom);
        state.OnRequestEnd(error: false);
        Assert.True(state.HasRoom);
        Assert.True(state.TryStart());
    }

    [Theory]
    [InlineData("round_robin", "none")]
    [InlineData("least_outstanding", "none")]
    [InlineData("round_robin", "client_ip")]
    public void Picks_pass_full_backends_by_and_a_fully_loaded_model_is_busy(string balanceName, string affinityName)
    {
        var balance = balanceName == "round_robin" ? BalancePolicy.RoundRobin : BalancePolicy.LeastOutstanding;
        var affinity = affinityName == "none" ? AffinityKind.None : AffinityKind.ClientIp;
        var route = Route([1, 2], balance: balance, affinity: affinity);
        var now = _time.GetTimestamp();
        ulong? key = affinity == AffinityKind.None ? null : BalancingFixtures.IpKey(7);
        for (var i = 0; i < 3; i++)
        {
            var pick = BackendSelector.Select(route, key, 0, now, allowPanic: true);
            Assert.True(pick.Found);
            Assert.True(route.Backends[pick.Index].State.TryStart());
        }
        Assert.Equal([1, 2], BalancingFixtures.Loads(route));
        Assert.False(BackendSelector.Select(route, key, 0, now, allowPanic: true).Found);
        Assert.True(BackendSelector.IsBusy(route, 0, now, allowPanic: true));
        Assert.False(BackendSelector.HasRoom(route, 0, now, allowPanic: true));

        route.Backends[1].State.OnRequestEnd(error: false);
        Assert.True(BackendSelector.HasRoom(route, 0, now, allowPanic: true));
        Assert.Equal(1, BackendSelector.Select(route, key, 0, now, allowPanic: true).Index);
    }

    [Fact]
    public void A_full_healthy_backend_is_waited_for_not_panicked_past_onto_an_unhealthy_one()
    {
        var route = Route([1, 1]);
        var now = _time.GetTimestamp();
        UnitFixtures.MarkHealthy(route.Backends[0].State);
        UnitFixtures.MarkUnhealthy(route.Backends[1].State);
        Assert.True(route.Backends[0].State.TryStart());

        Assert.False(BackendSelector.Select(route, null, 0, now, allowPanic: true).Found);
        Assert.True(BackendSelector.IsBusy(route, 0, now, allowPanic: true));
        // The unhealthy backend's free slot is no reason to wake a waiter.
        Assert.False(BackendSelector.HasRoom(route, 0, now, allowPanic: true));
    }

    [Fact]
    public void With_every_backend_unhealthy_panic_still_respects_capacity()
    {
        var route = Route([1, 1]);
        var now = _time.GetTimestamp();
        UnitFixtures.MarkUnhealthy(route.Backends[0].State);
        UnitFixtures.MarkUnhealthy(route.Backends[1].State);
        Assert.True(route.Backends[0].State.TryStart());

        var pick = BackendSelector.Select(route, null, 0, now, allowPanic: true);
        Assert.True(pick is { Found: true, Panic: true, Index: 1 }, pick.ToString());
        Assert.True(route.Backends[1].State.TryStart());
        Assert.False(BackendSelector.Select(route, null, 0, now, allowPanic: true).Found);
        Assert.True(BackendSelector.IsBusy(route, 0, now, allowPanic: true));
        Assert.False(BackendSelector.IsBusy(route, 0, now, allowPanic: false));   // fail-fast: no healthy backend, not busy
    }
}
