using System.Net;
using EdgeProxy.Balancing;
using EdgeProxy.Configuration;
using EdgeProxy.Forwarding;
using EdgeProxy.Routing;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Time.Testing;

namespace EdgeProxy.Tests.Unit.Forwarding;

/// <summary>What a request is pinned by: client IP, a header (`header:X-Session-ID`), or nothing.</summary>
public sealed class AffinityKeyTests
{
    private readonly FakeTimeProvider _time = UnitFixtures.Clock();

    private ModelRoute Route(AffinityConfig affinity, params (string, int)[] backends)
        => UnitFixtures.Route(_time, affinity, backends.Length > 0 ? backends : [("b0", 1), ("b1", 1), ("b2", 1)]);

    private static HttpContext Context(params (string Name, string Value)[] headers)
    {
        var context = new DefaultHttpContext();
        foreach (var (name, value) in headers)
        {
            context.Request.Headers.Append(name, value);
        }
        return context;
    }

    [Fact]
    public void Client_ip_affinity_hashes_the_address()
    {
        var route = Route(AffinityConfig.ClientIp);
        var ip = IPAddress.Parse("203.0.113.7");
        Assert.Equal(StableHash.Hash(ip), HttpForwarder.AffinityKey(route, Context(), ip));
        Assert.Equal(StableHash.Hash(ip), HttpForwarder.AffinityKey(route, Context(("X-Session-ID", "s1")), ip));
        Assert.Equal(HttpForwarder.AffinityKey(route, Context(), ip), HttpForwarder.AffinityKey(route, Context(), ip.MapToIPv6()));
    }

    [Fact]
    public void No_affinity_gives_no_key()
        => Assert.Null(HttpForwarder.AffinityKey(Route(new AffinityConfig(AffinityKind.None)), Context(), IPAddress.Loopback));

    [Fact]
    public void Header_affinity_hashes_the_header_value_whatever_the_client_address()
    {
        var route = Route(new AffinityConfig(AffinityKind.Header, "X-Session-ID"));
        var a = HttpForwarder.AffinityKey(route, Context(("X-Session-ID", "sess-42")), IPAddress.Parse("10.0.0.1"));
        var b = HttpForwarder.AffinityKey(route, Context(("x-session-id", "sess-42")), IPAddress.Parse("192.168.7.9"));
        Assert.Equal(StableHash.Hash("sess-42".AsSpan()), a);
        Assert.Equal(a, b);
        Assert.NotEqual(a, HttpForwarder.AffinityKey(route, Context(("X-Session-ID", "sess-43")), IPAddress.Parse("10.0.0.1")));
    }

    [Theory]
    [InlineData(false, "")]
    [InlineData(true, "")]
    public void Header_affinity_without_the_header_falls_back_to_the_client_address(bool present, string value)
    {
        var route = Route(new AffinityConfig(AffinityKind.Header, "X-Session-ID"));
        var ip = IPAddress.Parse("198.51.100.23");
        var context = present ? Context(("X-Session-ID", value)) : Context(("X-Other", "x"));
        Assert.Equal(StableHash.Hash(ip), HttpForwarder.AffinityKey(route, context, ip));
    }

    [Fact]
    public void Same_session_reaches_the_same_backend_and_sessions_spread_by_weight()
    {
        var route = Route(new AffinityConfig(AffinityKind.Header, "X-Session-ID"), ("b0", 5), ("b1", 1), ("b2", 1));
        var counts = new int[3];
        for (var session = 0; session < 10_000; session++)
        {
            var id = $"session-{session:x8}";
            var fromA = HttpForwarder.AffinityKey(route, Context(("X-Session-ID", id)), IPAddress.Parse("10.0.0.1"));
            var fromB = HttpForwarder.AffinityKey(route, Context(("X-Session-ID", id)), IPAddress.Parse("10.9.9.9"));
            var pick = BackendSelector.Select(route, fromA, 0, _time.GetTimestamp(), true).Index;
            Assert.Equal(pick, BackendSelector.Select(route, fromB, 0, _time.GetTimestamp(), true).Index);
            counts[pick]++;
        }
        Assert.InRange(counts[0], 10_000 * (5 / 7.0 - 0.03), 10_000 * (5 / 7.0 + 0.03));
        Assert.InRange(counts[1], 10_000 * (1 / 7.0 - 0.03), 10_000 * (1 / 7.0 + 0.03));
        Assert.InRange(counts[2], 10_000 * (1 / 7.0 - 0.03), 10_000 * (1 / 7.0 + 0.03));
    }
}
