using EdgeProxy.Forwarding;
using Microsoft.AspNetCore.Http;

namespace EdgeProxy.Tests.Unit.Forwarding;

/// <summary>X-Request-ID: the client's when well-formed, otherwise a fresh one.</summary>
public sealed class RequestIdsTests
{
    [Theory]
    [InlineData("abc", true)]
    [InlineData("0f8fad5bd9cb469fa16570867728950e", true)]
    [InlineData("0f8fad5b-d9cb-469f-a165-70867728950e", true)]
    [InlineData("req_01HZX.trace:span/1+2=3@edge", true)]
    [InlineData("a", true)]
    [InlineData("", false)]
    [InlineData(" ", false)]
    [InlineData("a b", false)]
    [InlineData("abc\n", false)]
    [InlineData("abc\r\nX-Injected: 1", false)]
    [InlineData("tab\there", false)]
    [InlineData("quote\"d", false)]
    [InlineData("semi;colon", false)]
    [InlineData("com,ma", false)]
    [InlineData("<script>", false)]
    [InlineData("ünïcode", false)]
    [InlineData("中文", false)]
    [InlineData("nul\0", false)]
    [InlineData("back\\slash", false)]
    public void Well_formed_ids(string id, bool ok) => Assert.Equal(ok, RequestIds.IsWellFormed(id));

    [Fact]
    public void Length_limit_is_128()
    {
        Assert.True(RequestIds.IsWellFormed(new string('a', RequestIds.MaxLength)));
        Assert.False(RequestIds.IsWellFormed(new string('a', RequestIds.MaxLength + 1)));
    }

    private static HttpRequest Request(params string[] ids)
    {
        var context = new DefaultHttpContext();
        foreach (var id in ids)
        {
            context.Request.Headers.Append("X-Request-ID", id);
        }
        return context.Request;
    }

    [Fact]
    public void Client_id_is_kept_when_well_formed()
        => Assert.Equal("trace-42", RequestIds.FromRequestOrNew(Request("trace-42")));

    [Theory]
    [InlineData()]
    [InlineData("bad id")]
    [InlineData("")]
    [InlineData("one", "two")]
    public void Otherwise_a_fresh_well_formed_id_is_made(params string[] ids)
    {
        var id = RequestIds.FromRequestOrNew(Request(ids));
        Assert.Matches("^[0-9a-f]{32}$", id);
        Assert.DoesNotContain(id, ids);
    }

    [Fact]
    public void New_ids_are_unique_and_well_formed()
    {
        var ids = Enumerable.Range(0, 10_000).Select(_ => RequestIds.NewId()).ToArray();
        Assert.Equal(ids.Length, ids.Distinct().Count());
        Assert.All(ids, id => Assert.True(RequestIds.IsWellFormed(id)));
    }

    [Fact]
    public void New_ids_from_many_threads_never_collide()
    {
        var ids = new System.Collections.Concurrent.ConcurrentBag<string>();
        Parallel.For(0, 4, _ =>
        {
            for (var i = 0; i < 25_000; i++)
            {
                ids.Add(RequestIds.NewId());
            }
        });
        Assert.Equal(100_000, ids.Distinct().Count());
        Assert.All(ids, id => Assert.Matches("^[0-9a-f]{32}$", id));
    }

    [Fact]
    public void A_fresh_id_writes_the_same_32_hex_characters_as_its_string()
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < 1000; i++)
        {
            var id = RequestIds.Next();
            var text = id.ToString();
            Assert.Matches("^[0-9a-f]{32}$", text);
            Assert.Equal(32, id.Length);
            var bytes = new byte[40];
            Assert.Equal(32, id.CopyTo(bytes));
            Assert.Equal(text, System.Text.Encoding.ASCII.GetString(bytes, 0, 32));
            Assert.True(seen.Add(text), $"id {text} repeated");
        }
    }

    [Theory]
    [InlineData(0x0123456789abcdefUL, 0xfedcba9876543210UL, "0123456789abcdeffedcba9876543210")]
    [InlineData(0UL, ulong.MaxValue, "0000000000000000ffffffffffffffff")]
    [InlineData(0x9a9a0f0f10101a1aUL, 0xa0b0c0d0e0f00908UL, "9a9a0f0f10101a1aa0b0c0d0e0f00908")]
    public void A_fresh_id_is_written_as_its_halves_in_hex(ulong high, ulong low, string expected)
    {
        var id = new RequestId(high, low);
        var bytes = new byte[32];
        Assert.Equal(32, id.CopyTo(bytes));
        Assert.Equal(expected, System.Text.Encoding.ASCII.GetString(bytes));
        Assert.Equal(expected, id.ToString());
    }

    [Fact]
    public void A_client_id_is_written_as_given_and_stays_the_same_string()
    {
        const string client = "trace-42:span/7";
        RequestId id = client;
        Assert.Same(client, id.ToString());
        Assert.Equal(client.Length, id.Length);
        var bytes = new byte[64];
        Assert.Equal(client.Length, id.CopyTo(bytes));
        Assert.Equal(client, System.Text.Encoding.ASCII.GetString(bytes, 0, client.Length));
    }
}
