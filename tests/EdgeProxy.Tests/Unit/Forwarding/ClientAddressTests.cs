using System.Net;
using EdgeProxy.Configuration;
using EdgeProxy.Forwarding;
using Microsoft.AspNetCore.Http;

namespace EdgeProxy.Tests.Unit.Forwarding;

/// <summary>The client IP for affinity and logs: X-Forwarded-For only from a trusted proxy, right-most untrusted hop.</summary>
public sealed class ClientAddressTests
{
    private static GatewaySettings Trusting(params string[] networks)
        => new() { TrustedProxies = networks.Select(IPNetwork.Parse).ToArray() };

    private static HttpContext Context(string peer, params string[] forwardedFor)
    {
        var context = new DefaultHttpContext();
        context.Connection.RemoteIpAddress = IPAddress.Parse(peer);
        foreach (var value in forwardedFor)
        {
            context.Request.Headers.Append("X-Forwarded-For", value);
        }
        return context;
    }

    [Theory]
    // peer, X-Forwarded-For values ("|" separates header lines), trusted networks, expected client, peer trusted
    [InlineData("203.0.113.9", "1.2.3.4", "", "203.0.113.9", false)]
    [InlineData("203.0.113.9", "1.2.3.4", "10.0.0.0/8", "203.0.113.9", false)]
    [InlineData("10.0.0.5", "1.2.3.4", "10.0.0.0/8", "1.2.3.4", true)]
    [InlineData("10.0.0.5", "6.6.6.6, 1.2.3.4", "10.0.0.0/8", "1.2.3.4", true)]
    [InlineData("10.0.0.5", "6.6.6.6, 1.2.3.4, 10.0.0.7", "10.0.0.0/8", "1.2.3.4", true)]
    [InlineData("10.0.0.5", "6.6.6.6|1.2.3.4", "10.0.0.0/8", "1.2.3.4", true)]
    [InlineData("10.0.0.5", "10.0.0.8, 10.0.0.7", "10.0.0.0/8", "10.0.0.8", true)]
    [InlineData("10.0.0.5", "", "10.0.0.0/8", "10.0.0.5", true)]
    [InlineData("10.0.0.5", "not-an-ip", "10.0.0.0/8", "10.0.0.5", true)]
    [InlineData("10.0.0.5", "1.2.3.4, garbage", "10.0.0.0/8", "10.0.0.5", true)]
    [InlineData("::ffff:10.0.0.5", "1.2.3.4", "10.0.0.0/8", "1.2.3.4", true)]
    [InlineData("10.0.0.5", "::ffff:1.2.3.4", "10.0.0.0/8", "1.2.3.4", true)]
    [InlineData("::1", "2001:db8::7", "::1/128", "2001:db8::7", true)]
    [InlineData("::ffff:203.0.113.9", "", "", "203.0.113.9", false)]
    public void Resolves_the_client(string peer, string forwardedFor, string trusted, string expected, bool peerTrusted)
    {
        var settings = Trusting(trusted.Length == 0 ? [] : trusted.Split(','));
        var context = Context(peer, forwardedFor.Length == 0 ? [] : forwardedFor.Split('|'));
        var client = ClientAddress.Resolve(context, settings, out var isTrusted);
        Assert.Equal(IPAddress.Parse(expected), client);
        Assert.Equal(peerTrusted, isTrusted);
    }

    [Fact]
    public void Missing_peer_address_is_loopback()
    {
        var context = new DefaultHttpContext();
        Assert.Equal(IPAddress.Loopback, ClientAddress.Peer(context));
    }
}
