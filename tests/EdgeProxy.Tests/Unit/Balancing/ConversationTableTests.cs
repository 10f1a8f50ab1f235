using EdgeProxy.Balancing;
using EdgeProxy.Configuration;
using Microsoft.Extensions.Time.Testing;

namespace EdgeProxy.Tests.Unit.Balancing;

/// <summary>
/// Prefix affinity remembers where each conversation was served: a new conversation is placed by
/// load (no headroom over the fair share), every later turn goes back to its backend while that is
/// within the model's bound, and a conversation that moved (its backend down) stays where its
/// cache now is. Memory is a fixed table per model.
/// </summary>
public sealed class ConversationTableTests
{
    private readonly FakeTimeProvider _time = UnitFixtures.Clock();

    [Fact]
    public void Remembers_a_conversation_until_another_takes_its_slot_in_fixed_memory()
    {
        var table = new ConversationTable();
        Assert.False(table.TryGet(0xABCDEF0123456789, out _));
        table.Record(0xABCDEF0123456789, 7);
        Assert.True(table.TryGet(0xABCDEF0123456789, out var tag));
        Assert.Equal(7, tag);

        // Another key with the same slot bits evicts it; the table never grows.
        var rival = 0xABCDEF0123456789 ^ (1UL << 40);
        table.Record(rival, 9);
        Assert.False(table.TryGet(0xABCDEF0123456789, out _));
        Assert.True(table.TryGet(rival, out tag));
        Assert.Equal(9, tag);
        for (var i = 0UL; i < 200_000; i++)
        {
            table.Record(StableHash.Mix(i), 1);
        }
        // 200,000 conversations: the table remembers at most its slots' worth (the most recent ones).
        var remembered = 0;
        for (var i = 0UL; i < 200_000; i++)
        {
            remembered += table.TryGet(StableHash.Mix(i), out _) ? 1 : 0;
        }
        Assert.InRange(remembered, ConversationTable.Slots / 2, ConversationTable.Slots);
        Assert.NotEqual(0, ConversationTable.TagOf("any"));
    }

    [Fact]
    public void A_new_conversation_goes_where_load_is_at_or_below_average_and_its_turns_follow_it()
    {
        var route = BalancingFixtures.Route(_time, new AffinityConfig(AffinityKind.Prefix), BalancePolicy.RoundRobin, [1, 1, 1, 1]);
        var now = _time.GetTimestamp();
        var key = BalancingFixtures.IpKey(42);
        var home = BalancingFixtures.Order(route, key)[0];

        // Its hash home carries 3, the others 2 (fair share 9/4): within 1.25 for a known key, not for a new one.
        BalancingFixtures.SetLoad(route, Enumerable.Range(0, 4).Select(i => i == home ? 3 : 2).ToArray());
        var ipPick = BackendSelector.Select(route, key, 0, now, allowPanic: true);
        Assert.Equal(home, ipPick.Index);
        var first = BackendSelector.Select(route, key, 0, now, allowPanic: true, opening: key);
        Assert.NotEqual(home, first.Index);

        // Its next turns go back where it was placed, even once the hash home is idle again.
        BalancingFixtures.SetLoad(route, 0, 0, 0, 0);
        for (var turn = 0; turn < 5; turn++)
        {
            Assert.Equal(first.Index, BackendSelector.Select(route, key, 0, now, allowPanic: true, opening: key).Index);
        }
    }

    [Fact]
    public void New_conversations_go_where_their_system_prompt_went_until_that_backend_is_above_average()
    {
        var route = BalancingFixtures.Route(_time, new AffinityConfig(AffinityKind.Prefix), BalancePolicy.RoundRobin, [1, 1, 1, 1]);
        var now = _time.GetTimestamp();
        var opening = BalancingFixtures.IpKey(1000);
        var home = BalancingFixtures.Order(route, opening)[0];
        var placed = new List<int>();
        for (var n = 0; n < 8; n++)
        {
            var pick = BackendSelector.Select(route, BalancingFixtures.IpKey(n), 0, now, allowPanic: true, opening: opening);
            Assert.True(route.Backends[pick.Index].State.TryStart());
            placed.Add(pick.Index);
        }
        // The first two share its cached system prompt (the floor); then each goes where load is at or below average.
        Assert.Equal([home, home], placed.Take(2));
        Assert.InRange(BalancingFixtures.Loads(route).Max() - BalancingFixtures.Loads(route).Min(), 0, 1);
    }

    [Fact]
    public void A_conversation_comes_home_over_a_learnt_batch_but_a_new_one_waits_for_room()
    {
        var route = BalancingFixtures.Route(_time, new AffinityConfig(AffinityKind.Prefix), BalancePolicy.RoundRobin, [1, 1]);
        var now = _time.GetTimestamp();
        var key = BalancingFixtures.IpKey(7);
        var home = BackendSelector.Select(route, key, 0, now, allowPanic: true, opening: key).Index;
        var other = 1 - home;

        // Both engines batch 4 and both are full (the model's bound is not what stops anyone here).
        foreach (var entry in route.Backends)
        {
            entry.State.ObserveEngine(running: 4, waiting: 1);
        }
        BalancingFixtures.SetLoad(route, 4, 4);
        Assert.All(route.Backends, b => Assert.Equal(4, b.State.Capacity));

        // The conversation goes back to its cache and waits there (4 + 1 in the engine's queue).
        var pick = BackendSelector.Select(route, key, 0, now, allowPanic: true, opening: key);
        Assert.Equal(home, pick.Index);
        Assert.True(pick.Home);
        Assert.True(route.Backends[home].State.TryStart(pick.Home));
        // Not further: its home at 4 + 1 is full for it too; it would go on along its order, but that one is full.
        Assert.False(BackendSelector.Select(route, key, 0, now, allowPanic: true, opening: key).Found);
        Assert.True(BackendSelector.IsBusy(route, 0, now, allowPanic: true));
        // A new conversation has no cache to come home to: it waits in the gateway's line for a slot anywhere.
        Assert.False(BackendSelector.Select(route, BalancingFixtures.IpKey(8), 0, now, allowPanic: true, opening: BalancingFixtures.IpKey(8)).Found);
        route.Backends[other].State.OnRequestEnd(error: false);
        Assert.Equal(other, BackendSelector.Select(route, BalancingFixtures.IpKey(8), 0, now, allowPanic: true, opening: BalancingFixtures.IpKey(8)).Index);
    }

    [Fact]
    public void A_conversation_that_failed_over_stays_where_its_cache_now_is()
    {
        var route = BalancingFixtures.Route(_time, new AffinityConfig(AffinityKind.Prefix), BalancePolicy.RoundRobin, [1, 1, 1]);
        var now = _time.GetTimestamp();
        var key = BalancingFixtures.IpKey(5);
        var first = BackendSelector.Select(route, key, 0, now, allowPanic: true, opening: key).Index;

        UnitFixtures.MarkUnhealthy(route.Backends[first].State);
        var moved = BackendSelector.Select(route, key, 0, now, allowPanic: true, opening: key).Index;
        Assert.NotEqual(first, moved);

        UnitFixtures.MarkHealthy(route.Backends[first].State);
        _time.Advance(TimeSpan.FromMinutes(10));   // past its slow start
        now = _time.GetTimestamp();
        Assert.Equal(moved, BackendSelector.Select(route, key, 0, now, allowPanic: true, opening: key).Index);
        // A client key (no conversation) returns home, as client_ip affinity does.
        Assert.Equal(first, BackendSelector.Select(route, key, 0, now, allowPanic: true).Index);
    }
}
