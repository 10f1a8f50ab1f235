using EdgeProxy.Auth;
using Microsoft.AspNetCore.Http;

namespace EdgeProxy.Tests.Unit.Auth;

/// <summary>The client's gateway key: `Authorization: Bearer` or `X-API-Key`, nothing else, nothing close.</summary>
public sealed class GatewayKeyAuthenticatorTests
{
    private const string Key = "sk-gateway-0123456789";

    private static HttpRequest Request(params (string Name, string Value)[] headers)
    {
        var context = new DefaultHttpContext();
        foreach (var (name, value) in headers)
        {
            context.Request.Headers.Append(name, value);
        }
        return context.Request;
    }

    [Theory]
    [InlineData("Authorization", "Bearer " + Key)]
    [InlineData("Authorization", "bearer " + Key)]
    [InlineData("Authorization", "BEARER " + Key)]
    [InlineData("Authorization", "BeArEr " + Key)]
    [InlineData("Authorization", "  Bearer " + Key + "  ")]
    [InlineData("authorization", "Bearer " + Key)]
    [InlineData("X-API-Key", Key)]
    [InlineData("x-api-key", Key)]
    [InlineData("X-Api-Key", " " + Key + " ")]
    public void Accepts_the_key_in_either_header(string header, string value)
        => Assert.True(new GatewayKeyAuthenticator(Key).IsAuthorized(Request((header, value))));

    public static TheoryData<string, string> Rejected => new()
    {
        { "Authorization", "Bearer wrong-key" },
        { "Authorization", "Bearer " + Key[..^1] },
        { "Authorization", "Bearer " + Key[..1] },
        { "Authorization", "Bearer " + Key + "x" },
        { "Authorization", "Bearer " + Key + Key },
        { "Authorization", "Bearer " + Key.ToUpperInvariant() },
        { "Authorization", "Bearer " + "x" + Key[1..] },
        { "Authorization", "Bearer " },
        { "Authorization", "Bearer" },
        { "Authorization", "" },
        { "Authorization", Key },
        { "Authorization", "Basic " + Key },
        { "Authorization", "Bearer" + Key },
        { "Authorization", "Token " + Key },
        { "X-API-Key", "" },
        { "X-API-Key", "Bearer " + Key },
        { "X-API-Key", Key[..^1] },
        { "X-API-Key", Key + "\0" },
        { "X-API-Key", new string('k', 5000) },
        { "Api-Key", Key },
        { "X-Auth-Token", Key },
    };

    [Theory]
    [MemberData(nameof(Rejected))]
    public void Rejects_anything_but_the_exact_key(string header, string value)
        => Assert.False(new GatewayKeyAuthenticator(Key).IsAuthorized(Request((header, value))));

    [Fact]
    public void Rejects_a_request_without_credentials()
        => Assert.False(new GatewayKeyAuthenticator(Key).IsAuthorized(Request()));

    [Fact]
    public void Repeated_headers_are_not_accepted()
    {
        var auth = new GatewayKeyAuthenticator(Key);
        Assert.False(auth.IsAuthorized(Request(("X-API-Key", "wrong"), ("X-API-Key", Key))));
        Assert.False(auth.IsAuthorized(Request(("Authorization", "Bearer wrong"), ("Authorization", "Bearer " + Key))));
    }

    [Fact]
    public void Either_header_carrying_the_key_is_enough()
    {
        var auth = new GatewayKeyAuthenticator(Key);
        Assert.True(auth.IsAuthorized(Request(("Authorization", "Bearer wrong"), ("X-API-Key", Key))));
        Assert.True(auth.IsAuthorized(Request(("Authorization", "Bearer " + Key), ("X-API-Key", "wrong"))));
    }

    [Fact]
    public void Non_ascii_keys_compare_as_utf8()
    {
        var auth = new GatewayKeyAuthenticator("密钥-🔐-key");
        Assert.True(auth.IsAuthorized(Request(("X-API-Key", "密钥-🔐-key"))));
        Assert.False(auth.IsAuthorized(Request(("X-API-Key", "密钥-🔐-kez"))));
        Assert.False(auth.IsAuthorized(Request(("X-API-Key", "密钥"))));
    }

    [Fact]
    public void Empty_key_disables_authentication()
    {
        var auth = new GatewayKeyAuthenticator("");
        Assert.False(auth.Enabled);
        Assert.True(auth.IsAuthorized(Request()));
        Assert.True(auth.IsAuthorized(Request(("Authorization", "Bearer anything"))));
        Assert.False(auth.Matches("anything"));
        Assert.False(auth.Matches(""));
    }

    [Fact]
    public void Matches_is_exact()
    {
        var auth = new GatewayKeyAuthenticator(Key);
        Assert.True(auth.Enabled);
        Assert.True(auth.Matches(Key));
        Assert.False(auth.Matches(""));
        Assert.False(auth.Matches(Key.AsSpan(0, Key.Length - 1)));
        Assert.False(auth.Matches(Key + " "));
    }

    [Theory]
    [InlineData("abc", "abc", true)]
    [InlineData("abcabc", "abc", false)]   // the expected key repeated: bytes match when cycled, length does not
    [InlineData("ab", "abc", false)]
    [InlineData("abd", "abc", false)]
    [InlineData("xbc", "abc", false)]
    [InlineData("a", "a", true)]
    [InlineData("aa", "a", false)]
    [InlineData("", "a", false)]
    public void Fixed_time_comparison_is_exact(string presented, string expected, bool match)
        => Assert.Equal(match, GatewayKeyAuthenticator.FixedTimeMatches(System.Text.Encoding.UTF8.GetBytes(presented), System.Text.Encoding.UTF8.GetBytes(expected)));

    [Fact]
    public void Every_single_byte_change_is_detected()
    {
        var expected = System.Text.Encoding.UTF8.GetBytes(Key);
        for (var i = 0; i < expected.Length; i++)
        {
            var presented = (byte[])expected.Clone();
            presented[i] ^= 0x01;
            Assert.False(GatewayKeyAuthenticator.FixedTimeMatches(presented, expected));
        }
        Assert.True(GatewayKeyAuthenticator.FixedTimeMatches((byte[])expected.Clone(), expected));
    }
}
