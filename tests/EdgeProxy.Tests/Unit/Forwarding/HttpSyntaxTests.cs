using System.Text;
using EdgeProxy.Forwarding;

namespace EdgeProxy.Tests.Unit.Forwarding;

/// <summary>
/// The byte-level grammar both paths hold messages to (<see cref="HttpSyntax"/>), as tables of raw
/// input → accepted or not. Strings are Latin-1: one char per byte ("\u0001" is byte 0x01).
/// </summary>
public sealed class HttpSyntaxTests
{
    private static byte[] Bytes(string text) => Encoding.Latin1.GetBytes(text);

    [Theory]
    [InlineData("/", true)]
    [InlineData("/svc/m/v1/chat/completions?stream=true", true)]
    [InlineData("/a%2Fb%2fc%41%ff%C3%A9", true)]
    [InlineData("/a?q=%00", true)]                   // the query's escapes are the backend's business
    [InlineData("/a?q=100%", true)]
    [InlineData("/a?q=%zz&r=%", true)]
    [InlineData("/a\"<>\\^`{|}b?q={\"k\":[1]}", true)]   // outside RFC 3986, but sent unescaped by clients
    [InlineData("/a;b=c,d!$&'()*+@:?q=a:b@c/d?e", true)]
    [InlineData("http://gw/svc/m/x", true)]          // absolute-form (the general path's)
    [InlineData("*", true)]
    [InlineData("", false)]
    [InlineData("/a b", false)]
    [InlineData("/a\tb", false)]
    [InlineData("/a\u0001b", false)]
    [InlineData("/a\u001fb", false)]
    [InlineData("/a\u007fb", false)]
    [InlineData("/a\rb", false)]
    [InlineData("/a\nb", false)]
    [InlineData("/a\u0000b", false)]
    [InlineData("/a?q=\u0001", false)]
    [InlineData("/a?q=\u007f", false)]
    [InlineData("/caf\u00e9", false)]
    [InlineData("/caf\u00c3\u00a9", false)]
    [InlineData("/a#frag", false)]
    [InlineData("/a?q#", false)]
    [InlineData("/a%00b", false)]
    [InlineData("/a%00", false)]
    [InlineData("/a%zz", false)]
    [InlineData("/a%4", false)]
    [InlineData("/a%4g", false)]
    [InlineData("/a%", false)]
    [InlineData("/a%%41", false)]
    public void Request_targets(string target, bool valid)
        => Assert.Equal(valid, HttpSyntax.IsRequestTarget(Bytes(target)));

    [Theory]
    [InlineData("", true)]
    [InlineData("gw", true)]
    [InlineData("GW.Example.COM", true)]
    [InlineData("gw:8000", true)]
    [InlineData("gw:0", true)]
    [InlineData("gw:65535", true)]
    [InlineData("10.0.0.1:80", true)]
    [InlineData("g_w~x-y.z", true)]
    [InlineData("g!w$&'()", true)]
    [InlineData("[::1]", true)]
    [InlineData("[::1]:8080", true)]
    [InlineData("[2001:db8::ffff:1.2.3.4]:1", true)]
    [InlineData("gw/../x@evil", false)]
    [InlineData("u@gw", false)]
    [InlineData("gw/x", false)]
    [InlineData("g%41w", false)]
    [InlineData("g w", false)]
    [InlineData("g\tw", false)]
    [InlineData("g\u0001w", false)]
    [InlineData("g\u00e9w", false)]
    [InlineData("g*w", false)]
    [InlineData("g+w", false)]
    [InlineData("g,w", false)]
    [InlineData("g;w", false)]
    [InlineData("g=w", false)]
    [InlineData("g?w", false)]
    [InlineData("g#w", false)]
    [InlineData("g\\w", false)]
    [InlineData("gw:", false)]
    [InlineData("gw:8x", false)]
    [InlineData("gw:65536", false)]
    [InlineData("gw:123456", false)]
    [InlineData("gw:80:80", false)]
    [InlineData("gw:+80", false)]
    [InlineData(":80", false)]
    [InlineData("[::1", false)]
    [InlineData("::1", false)]
    [InlineData("[]", false)]
    [InlineData("[v1.x]", false)]
    [InlineData("[fe80::1%25eth0]", false)]
    [InlineData("[::1]x", false)]
    [InlineData("[::1]:", false)]
    public void Hosts(string host, bool valid)
        => Assert.Equal(valid, HttpSyntax.IsHost(Bytes(host)));

    [Theory]
    [InlineData("X-Custom", true)]
    [InlineData("!#$%&'*+-.^_`|~09azAZ", true)]
    [InlineData("", false)]
    [InlineData("X A", false)]
    [InlineData("X-A ", false)]
    [InlineData(" X-A", false)]
    [InlineData("X-\u0001", false)]
    [InlineData("X-\u007f", false)]
    [InlineData("X(A)", false)]
    [InlineData("X\"A", false)]
    [InlineData("X/A", false)]
    [InlineData("X:A", false)]
    [InlineData("X-\u00c9", false)]
    public void Tokens(string name, bool valid)
        => Assert.Equal(valid, HttpSyntax.IsToken(Bytes(name)));

    [Theory]
    [InlineData("", true, true)]
    [InlineData("plain value", true, true)]
    [InlineData("a\tb", true, true)]
    [InlineData("\"q,\\\"x\" (c)", true, true)]
    [InlineData("caf\u00e9", false, true)]            // obs-text: relayed in responses, refused in requests
    [InlineData("caf\u00c3\u00a9", false, true)]
    [InlineData("\u00ff", false, true)]
    [InlineData("a\u0000b", false, false)]
    [InlineData("a\u0001b", false, false)]
    [InlineData("a\u001b[31m", false, false)]
    [InlineData("a\rb", false, false)]
    [InlineData("a\nb", false, false)]
    [InlineData("a\u007fb", false, false)]
    public void Field_values(string value, bool request, bool response)
    {
        Assert.Equal(request, HttpSyntax.IsRequestFieldValue(Bytes(value)));
        Assert.Equal(response, HttpSyntax.IsResponseFieldValue(Bytes(value)));
    }

    [Theory]
    [InlineData("0", 0L)]
    [InlineData("5", 5L)]
    [InlineData("002", 2L)]
    [InlineData("123456789012345678", 123456789012345678L)]
    [InlineData("", -1L)]
    [InlineData("+5", -1L)]
    [InlineData("-5", -1L)]
    [InlineData("5 ", -1L)]
    [InlineData("5, 5", -1L)]
    [InlineData("0x5", -1L)]
    [InlineData("5e0", -1L)]
    [InlineData("5.0", -1L)]
    [InlineData("1234567890123456789", -1L)]
    [InlineData("99999999999999999999", -1L)]
    public void Content_lengths(string value, long expected)
    {
        var parsed = HttpSyntax.TryParseContentLength(Bytes(value), out var length);

        Assert.Equal(expected >= 0, parsed);
        if (parsed)
        {
            Assert.Equal(expected, length);
        }
    }

    [Theory]
    [InlineData("GET", true)]
    [InlineData("HEAD", true)]
    [InlineData("POST", true)]
    [InlineData("PUT", true)]
    [InlineData("DELETE", true)]
    [InlineData("PATCH", true)]
    [InlineData("OPTIONS", true)]
    [InlineData("get", false)]
    [InlineData("Get", false)]
    [InlineData("post", false)]
    [InlineData("TRACE", false)]
    [InlineData("CONNECT", false)]
    [InlineData("PROPFIND", false)]
    [InlineData("GETX", false)]
    [InlineData("", false)]
    [InlineData("G\u00c9T", false)]
    public void Methods_are_the_seven_as_spelled(string method, bool forwarded)
    {
        Assert.Equal(forwarded, HttpSyntax.Method(Bytes(method)) is not null);
        Assert.Equal(forwarded, HttpSyntax.IsMethod(method));
    }

    [Theory]
    [InlineData("plain", true)]
    [InlineData("caf\u00e9", true)]
    [InlineData("\u0100", false)]                    // no single byte on the wire decodes to it
    [InlineData("\u20ac", false)]
    public void The_general_paths_strings_are_checked_as_the_bytes_they_came_from(string text, bool holds)
        => Assert.Equal(holds, HttpSyntax.Holds(text, HttpSyntax.IsResponseFieldValue));

    [Fact]
    public void Long_strings_are_checked_in_a_pooled_buffer()
    {
        Assert.True(HttpSyntax.Holds(new string('v', 5000), HttpSyntax.IsRequestFieldValue));
        Assert.False(HttpSyntax.Holds(new string('v', 5000) + "\u0001", HttpSyntax.IsRequestFieldValue));
    }
}
