using System.Net;
using EdgeProxy.Balancing;

namespace EdgeProxy.Tests.Unit.Balancing;

/// <summary>Client-IP affinity: sticky, weighted, bounded, minimal disruption, identical across replicas.</summary>
public sealed class AffinityTableTests
{
    private const int Keys = 10_000;

    /// <summary>10,000 distinct random IPv4 client addresses, the same every run.</summary>
    private static ulong[] ClientKeys(int seed = 20250101)
    {
        var random = new Random(seed);
        var seen = new HashSet<uint>();
        var keys = new List<ulong>(Keys);
        var bytes = new byte[4];
        while (keys.Count < Keys)
        {
            random.NextBytes(bytes);
            if (seen.Add(BitConverter.ToUInt32(bytes)))
            {
                keys.Add(StableHash.Hash(new IPAddress(bytes)));
            }
        }
        return keys.ToArray();
    }

    private static string[] Ids(int n) => Enumerable.Range(1, n).Select(i => $"backend-{i}").ToArray();

    private static int[] Ones(int n) => Enumerable.Repeat(1, n).ToArray();

    /// <summary>Backend id per key under a table built for <paramref name="ids"/>.</summary>
    private static string[] Map(string[] ids, int[] weights, ulong[] keys)
    {
        var table = AffinityTable.Build(ids, weights);
        return keys.Select(k => ids[table.Lookup(k)]).ToArray();
    }

    [Fact]
    public void Same_key_reaches_the_same_backend_every_time()
    {
        var table = AffinityTable.Build(Ids(3), [5, 1, 1]);
        foreach (var key in ClientKeys().Take(1000))
        {
            var first = table.Lookup(key);
            for (var i = 0; i < 5; i++)
            {
                Assert.Equal(first, table.Lookup(key));
            }
        }
    }

    [Theory]
    [InlineData(new[] { 5, 1, 1 })]
    [InlineData(new[] { 1, 1, 1 })]
    [InlineData(new[] { 3, 2, 1, 1 })]
    [InlineData(new[] { 1, 1, 1, 1, 1 })]
    public void Clients_spread_in_proportion_to_weight(int[] weights)
    {
        var ids = Ids(weights.Length);
        var table = AffinityTable.Build(ids, weights);
        var counts = new int[weights.Length];
        foreach (var key in ClientKeys())
        {
            counts[table.Lookup(key)]++;
        }
        var total = weights.Sum();
        for (var i = 0; i < weights.Length; i++)
        {
            var expected = (double)weights[i] / total;
            var actual = (double)counts[i] / Keys;
            Assert.True(Math.Abs(actual - expected) <= 0.03, $"backend {i}: {actual:P2} of clients, weight share {expected:P2}");
        }
    }

    [Theory]
    [InlineData(new[] { 5, 1, 1 })]
    [InlineData(new[] { 1, 1, 1 })]
    [InlineData(new[] { 1000, 1 })]
    public void Table_slots_are_owned_in_proportion_to_weight(int[] weights)
    {
        var table = AffinityTable.Build(Ids(weights.Length), weights);
        var owned = new int[weights.Length];
        for (var slot = 0; slot < table.Size; slot++)
        {
            owned[table.Lookup((ulong)slot)]++;
        }
        var total = weights.Sum();
        for (var i = 0; i < weights.Length; i++)
        {
            var exact = (double)table.Size * weights[i] / total;
            Assert.InRange(owned[i], Math.Floor(exact), Math.Ceiling(exact));
        }
    }

    [Fact]
    public void Removing_one_of_five_backends_moves_about_a_fifth_of_the_clients()
    {
        var keys = ClientKeys();
        var before = Map(Ids(5), Ones(5), keys);
        var remaining = Ids(5).Where(id => id != "backend-3").ToArray();
        var after = Map(remaining, Ones(4), keys);

        var moved = 0;
        var movedFromSurvivors = 0;
        for (var k = 0; k < keys.Length; k++)
        {
            Assert.NotEqual("backend-3", after[k]);
            if (before[k] != after[k])
            {
                moved++;
                if (before[k] != "backend-3")
                {
                    movedFromSurvivors++;
                }
            }
        }
        Assert.True(moved <= Keys * (1.0 / 5 + 0.05), $"{moved} of {Keys} clients moved");
        Assert.True(movedFromSurvivors <= Keys * 0.05, $"{movedFromSurvivors} clients of surviving backends moved");
    }

    [Fact]
    public void Adding_a_sixth_backend_moves_about_a_sixth_of_the_clients()
    {
        var keys = ClientKeys();
        var before = Map(Ids(5), Ones(5), keys);
        var after = Map(Ids(6), Ones(6), keys);
        var moved = keys.Select((_, k) => before[k] != after[k]).Count(m => m);
        var toNew = after.Count(id => id == "backend-6");
        Assert.True(moved <= Keys * (1.0 / 6 + 0.05), $"{moved} of {Keys} clients moved");
        Assert.InRange(toNew, Keys * (1.0 / 6 - 0.03), Keys * (1.0 / 6 + 0.03));
    }

    [Fact]
    public void Changing_one_weight_moves_only_about_the_weight_difference()
    {
        var keys = ClientKeys();
        var before = Map(Ids(4), [1, 1, 1, 1], keys);
        var after = Map(Ids(4), [2, 1, 1, 1], keys);
        var moved = keys.Select((_, k) => before[k] != after[k]).Count(m => m);
        // backend-1 grows from 1/4 to 2/5 of the clients: 15% must move, not all of them.
        Assert.True(moved <= Keys * (0.15 + 0.05), $"{moved} of {Keys} clients moved");
    }

    [Fact]
    public void Two_independently_built_tables_are_identical()
    {
        // Two gateway instances build from the same config with no shared state.
        var ids = new[] { "backend-1", "后端节点2", "gpu-node-03" };
        var first = AffinityTable.Build(ids, [5, 1, 1]);
        var second = AffinityTable.Build(ids.Select(id => new string(id.AsSpan())).ToArray(), [5, 1, 1]);
        Assert.Equal(first.Size, second.Size);
        for (var slot = 0UL; slot < (ulong)first.Size; slot++)
        {
            Assert.Equal(first.Lookup(slot), second.Lookup(slot));
        }
    }

    /// <summary>
    /// The table for a fixed config, fingerprinted once (the value was reproduced by an independent
    /// Python implementation of the documented Maglev construction). Instances of different versions
    /// behind one L4 balancer must agree; a change to the table construction fails here, not in production.
    /// </summary>
    [Fact]
    public void Table_for_a_fixed_config_is_stable_across_versions()
    {
        var table = AffinityTable.Build(["backend-1", "backend-2", "backend-3"], [5, 1, 1]);
        Assert.Equal(1021, table.Size);
        var slots = new byte[table.Size];
        for (var slot = 0; slot < table.Size; slot++)
        {
            slots[slot] = (byte)table.Lookup((ulong)slot);
        }
        Assert.Equal(Fingerprint, StableHash.Hash(slots.AsSpan()));
    }

    private const ulong Fingerprint = 0xffdc7ac24cbfc517UL;

    [Theory]
    [InlineData(1, 1021)]
    [InlineData(3, 1021)]
    [InlineData(10, 1021)]
    [InlineData(11, 4099)]
    [InlineData(64, 8191)]
    public void Table_size_depends_only_on_the_backend_count(int backends, int size)
    {
        var table = AffinityTable.Build(Ids(backends), Ones(backends));
        Assert.Equal(size, table.Size);

        // Looking up any number of distinct clients leaves the table as it was: no per-client state.
        var random = new Random(7);
        var probe = new int[16];
        for (var i = 0; i < 16; i++)
        {
            probe[i] = table.Lookup((ulong)i);
        }
        for (var i = 0; i < 200_000; i++)
        {
            table.Lookup((ulong)random.NextInt64());
        }
        Assert.Equal(size, table.Size);
        for (var i = 0; i < 16; i++)
        {
            Assert.Equal(probe[i], table.Lookup((ulong)i));
        }
    }

    [Fact]
    public void Every_backend_owns_slots_even_at_extreme_weights()
    {
        var table = AffinityTable.Build(Ids(64), Enumerable.Range(0, 64).Select(i => i == 0 ? 1000 : 1).ToArray());
        var owners = new HashSet<int>();
        for (var slot = 0; slot < table.Size; slot++)
        {
            owners.Add(table.Lookup((ulong)slot));
        }
        Assert.Equal(64, owners.Count);
    }

    [Fact]
    public void Empty_backend_list_is_refused()
        => Assert.Throws<ArgumentOutOfRangeException>(() => AffinityTable.Build([], []));
}
