using System.Text;
using EdgeProxy.Forwarding;

namespace EdgeProxy.Tests.Unit.Forwarding;

/// <summary>Hop-by-hop handling (RFC 9110 §7.6.1) and the headers the gateway replaces.</summary>
public sealed class HeaderRulesTests
{
    [Theory]
    [InlineData("X-Foo", "close, X-Foo", true)]
    [InlineData("x-foo", "close,X-FOO", true)]
    [InlineData("X-Foo", "  x-foo  ", true)]
    [InlineData("X-Foo", "\tx-foo\t", true)]
    [InlineData("X-Foo", "keep-alive ,, x-foo ,", true)]
    [InlineData("Keep-Alive", "keep-alive", true)]
    [InlineData("Upgrade", "Upgrade, HTTP2-Settings", true)]
    [InlineData("HTTP2-Settings", "Upgrade, HTTP2-Settings", true)]
    [InlineData("X-Foo", "X-FooBar", false)]
    [InlineData("X-Foo", "X-Fo", false)]
    [InlineData("X-Foo", "X-Foo-Bar, close", false)]
    [InlineData("X-Foo", "close", false)]
    [InlineData("X-Foo", "", false)]
    [InlineData("X-Foo", ",", false)]
    [InlineData("X Foo", "X, Foo", false)]
    public void Names_listed_in_connection(string name, string connection, bool listed)
    {
        Assert.Equal(listed, HeaderRules.NamedByConnection(Encoding.ASCII.GetBytes(connection), Encoding.ASCII.GetBytes(name)));
        Assert.Equal(listed, HeaderRules.NamedByConnection(connection, name));
    }

    [Theory]
    [InlineData("", "None")]
    [InlineData("keep-alive", "KeepAlive")]
    [InlineData("Keep-Alive", "KeepAlive")]
    [InlineData("close", "Close")]
    [InlineData("CLOSE", "Close")]
    [InlineData(" close , keep-alive ,, ", "Close, KeepAlive")]
    [InlineData("keep-alive, Upgrade, TE", "KeepAlive")]              // hop-by-hop names are stripped anyway
    [InlineData("close, X-Foo", "Close, NamesFields")]
    [InlineData("keep-alive, X-Foo", "KeepAlive, NamesFields")]
    [InlineData("X-Foo, keep-alive", "KeepAlive, NamesFields")]
    [InlineData("Upgrade, HTTP2-Settings", "NamesFields")]
    [InlineData("X-Foo", "NamesFields")]
    [InlineData("closed", "NamesFields")]
    [InlineData("keep-alive2", "NamesFields")]
    public void Connection_values_are_read_token_by_token(string connection, string tokens)
        => Assert.Equal(tokens, HeaderRules.ReadConnection(Encoding.ASCII.GetBytes(connection)).ToString());

    [Theory]
    [InlineData(null, null)]
    [InlineData("", null)]
    [InlineData("keep-alive", null)]
    [InlineData("close, upgrade", null)]
    [InlineData("keep-alive, X-Foo", "keep-alive, X-Foo")]
    [InlineData("keep-alive, X-Foo, keep-alive", "keep-alive, X-Foo, keep-alive")]
    public void The_general_path_checks_fields_only_when_connection_names_some(string? connection, string? naming)
        => Assert.Equal(naming, HeaderRules.ConnectionNamingFields(connection));

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
