using EdgeProxy.Forwarding;

namespace EdgeProxy.Tests.Unit.Forwarding;

/// <summary>Hop-by-hop handling (RFC 9110 §7.6.1) and the headers the gateway replaces.</summary>
public sealed class HeaderRulesTests
{
    [Theory]
    [InlineData("X-Foo", "close, X-Foo", true)]
    [InlineData("x-foo", "close,X-FOO", true)]
    [InlineData("X-Foo", "  x-foo  ", true)]
    [InlineData("X-Foo", "keep-alive ,, x-foo ,", true)]
    [InlineData("Keep-Alive", "keep-alive", true)]
    [InlineData("Upgrade", "Upgrade, HTTP2-Settings", true)]
    [InlineData("HTTP2-Settings", "Upgrade, HTTP2-Settings", true)]
    [InlineData("X-Foo", "X-FooBar", false)]
    [InlineData("X-Foo", "X-Fo", false)]
    [InlineData("X-Foo", "X-Foo-Bar, close", false)]
    [InlineData("X-Foo", "close", false)]
    [InlineData("X-Foo", "", false)]
    [InlineData("X-Foo", null, false)]
    [InlineData("X-Foo", ",", false)]
    [InlineData("X Foo", "X, Foo", false)]
    public void Names_listed_in_connection(string name, string? connection, bool listed)
        => Assert.Equal(listed, HeaderRules.IsListedInConnection(name, connection));

    [Theory]
    [InlineData(null, null)]
    [InlineData("", null)]
    [InlineData("keep-alive", null)]
    [InlineData("Keep-Alive", null)]
    [InlineData("close", null)]
    [InlineData(" close , keep-alive ,, ", null)]
    [InlineData("keep-alive, Upgrade, TE", null)]              // hop-by-hop names are stripped anyway
    [InlineData("close, X-Foo", "close, X-Foo")]
    [InlineData("Upgrade, HTTP2-Settings", "Upgrade, HTTP2-Settings")]
    [InlineData("X-Foo", "X-Foo")]
    public void Connection_values_that_name_only_hop_by_hop_options_need_no_per_header_scan(string? connection, string? extra)
        => Assert.Equal(extra, HeaderRules.ExtraConnectionOptions(connection));

    [Theory]
    [InlineData("Connection")]
    [InlineData("keep-alive")]
    [InlineData("Proxy-Connection")]
    [InlineData("proxy-authenticate")]
    [InlineData("Proxy-Authorization")]
    [InlineData("TE")]
    [InlineData("Trailer")]
    [InlineData("transfer-encoding")]
    [InlineData("Upgrade")]
    public void Hop_by_hop_headers(string name) => Assert.Contains(name, (IReadOnlySet<string>)HeaderRules.HopByHop);

    [Theory]
    [InlineData("Content-Type")]
    [InlineData("Accept")]
    [InlineData("Trailers")]
    [InlineData("X-Request-ID")]
    [InlineData("Cache-Control")]
    public void End_to_end_headers_are_not_hop_by_hop(string name) => Assert.DoesNotContain(name, (IReadOnlySet<string>)HeaderRules.HopByHop);

    [Theory]
    [InlineData("authorization")]
    [InlineData("X-API-KEY")]
    [InlineData("x-forwarded-for")]
    [InlineData("X-Forwarded-Proto")]
    [InlineData("X-Forwarded-Host")]
    [InlineData("Forwarded")]
    [InlineData("X-Real-IP")]
    [InlineData("Host")]
    [InlineData("x-request-id")]
    public void Client_credentials_and_forwarding_headers_are_replaced(string name)
        => Assert.Contains(name, (IReadOnlySet<string>)HeaderRules.RequestReplaced);

    [Fact]
    public void Upstream_request_id_and_server_are_replaced_in_responses()
    {
        Assert.Contains("x-request-id", (IReadOnlySet<string>)HeaderRules.ResponseReplaced);
        Assert.Contains("SERVER", (IReadOnlySet<string>)HeaderRules.ResponseReplaced);
        Assert.DoesNotContain("Content-Type", (IReadOnlySet<string>)HeaderRules.ResponseReplaced);
    }
}
