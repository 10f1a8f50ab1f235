using System.Net;
using System.Text;
using EdgeProxy.Balancing;

namespace EdgeProxy.Tests.Unit.Balancing;

/// <summary>
/// Replicas (and successive versions) must hash a client to the same value, or they disagree on the
/// client's backend. The expected values were computed once, outside .NET (FNV-1a 64 + SplitMix64
/// finaliser); a change of algorithm, seed or byte order fails here.
/// </summary>
public sealed class StableHashTests
{
    [Theory]
    [InlineData("", 0xf52a15e9a9b5e89bUL)]
    [InlineData("backend-1", 0x363540f699aea3ceUL)]
    [InlineData("后端节点1", 0xede246859b21c7faUL)]
    public void String_hash_is_utf8_fnv1a_with_splitmix_finaliser(string text, ulong expected)
    {
        Assert.Equal(expected, StableHash.Hash(text));
        Assert.Equal(expected, StableHash.Hash(Encoding.UTF8.GetBytes(text).AsSpan()));
    }

    [Fact]
    public void Seeded_hash_is_stable_and_differs_from_unseeded()
    {
        Assert.Equal(0x6ef036bd438e79deUL, StableHash.Hash("backend-1", 0x6d61676c6576UL));
        Assert.NotEqual(StableHash.Hash("backend-1"), StableHash.Hash("backend-1", 1));
    }

    /// <summary>Header affinity hashes the header value's UTF-16 code units (low byte, high byte).</summary>
    [Theory]
    [InlineData("session-42", 0x5f0477b34c850ae6UL)]
    [InlineData("用户", 0xf926ca49b761a0b5UL)]
    public void Char_span_hash_is_stable(string text, ulong expected) => Assert.Equal(expected, StableHash.Hash(text.AsSpan()));

    [Theory]
    [InlineData("192.168.1.10", 0x8b4075ad4d67d4b1UL)]
    [InlineData("10.0.0.1", 0xe7a770915e3a6bb4UL)]
    [InlineData("2001:db8::1", 0x216dba65aa6c0c57UL)]
    public void Address_hash_is_over_the_network_order_bytes(string address, ulong expected)
        => Assert.Equal(expected, StableHash.Hash(IPAddress.Parse(address)));

    [Theory]
    [InlineData("192.168.1.10")]
    [InlineData("10.0.0.1")]
    [InlineData("127.0.0.1")]
    [InlineData("0.0.0.0")]
    public void Ipv4_mapped_ipv6_hashes_as_ipv4(string v4)
    {
        var address = IPAddress.Parse(v4);
        Assert.Equal(StableHash.Hash(address), StableHash.Hash(address.MapToIPv6()));
        Assert.Equal(StableHash.Hash(address), StableHash.Hash(IPAddress.Parse("::ffff:" + v4)));
    }

    [Fact]
    public void Scope_id_does_not_change_an_ipv6_hash()
    {
        var plain = IPAddress.Parse("fe80::1");
        var scoped = IPAddress.Parse("fe80::1%2");
        Assert.Equal(StableHash.Hash(plain), StableHash.Hash(scoped));
    }

    [Fact]
    public void Neighbouring_addresses_spread_over_the_whole_range()
    {
        // Consecutive client IPs (one office NAT pool) must not land in neighbouring table slots.
        var top = new int[16];
        for (var i = 0; i < 4096; i++)
        {
            var hash = StableHash.Hash(new IPAddress(new byte[] { 10, 0, (byte)(i >> 8), (byte)i }));
            top[hash >> 60]++;
        }
        Assert.All(top, count => Assert.InRange(count, 256 - 80, 256 + 80));
    }

    [Fact]
    public void Mix_is_the_splitmix64_finaliser()
    {
        Assert.Equal(0x5692161d100b05e5UL, StableHash.Mix(1));
        Assert.Equal(0UL, StableHash.Mix(0));
    }
}
