using System.Text;
using EdgeProxy.Forwarding;

namespace EdgeProxy.Tests.Unit.Forwarding;

/// <summary>The fast path's byte helpers agree with the library calls they replace.</summary>
public sealed class HttpAsciiTests
{
    [Theory]
    [InlineData("")]
    [InlineData("\r\n")]
    [InlineData("abc")]
    [InlineData("abc\r\ndef")]
    [InlineData("a\nb\r\nc")]
    [InlineData("\n\n\r\n")]
    [InlineData("a\r\rb\n")]
    [InlineData("a\rb\r\n\r\n")]
    public void IndexOfCrlf_matches_a_substring_search(string text)
    {
        var bytes = Encoding.ASCII.GetBytes(text);
        Assert.Equal(bytes.AsSpan().IndexOf("\r\n"u8), HttpAscii.IndexOfCrlf(bytes));
    }

    [Theory]
    [InlineData("")]
    [InlineData(" ")]
    [InlineData("\t a b \t")]
    [InlineData("ab")]
    [InlineData(" \r ")]
    public void TrimOws_matches_the_library_trim(string text)
    {
        var bytes = Encoding.ASCII.GetBytes(text);
        Assert.Equal(bytes.AsSpan().Trim(" \t"u8).ToArray(), HttpAscii.TrimOws(bytes).ToArray());
        HttpAscii.TrimOws(bytes, out var leading);
        Assert.Equal(bytes.Length - bytes.AsSpan().TrimStart(" \t"u8).Length, leading);
    }

    /// <summary>Every pair of bytes: ASCII letters fold and nothing else does ('@' vs '`', '[' vs '{'); a non-ASCII byte matches only itself.</summary>
    [Fact]
    public void EqualsIgnoreCase_folds_letters_only()
    {
        for (var a = 0; a < 256; a++)
        {
            for (var b = 0; b < 256; b++)
            {
                ReadOnlySpan<byte> x = [(byte)'k', (byte)a];
                ReadOnlySpan<byte> y = [(byte)'K', (byte)b];
                var expected = a < 0x80 && b < 0x80 ? System.Text.Ascii.EqualsIgnoreCase(x, y) : a == b;
                Assert.True(expected == HttpAscii.EqualsIgnoreCase(x, y), $"{a:x2} vs {b:x2}");
            }
        }
        Assert.False(HttpAscii.EqualsIgnoreCase("abc"u8, "ab"u8));
        Assert.True(HttpAscii.EqualsIgnoreCase("Content-Length"u8, "content-length"u8));
    }

    /// <summary>Names past one eight-byte word: a case difference or a mismatch in any position, either word, or the tail.</summary>
    [Fact]
    public void EqualsIgnoreCase_agrees_with_the_library_at_every_position_of_long_names()
    {
        var name = "X-Forwarded-Proto-Extra"u8.ToArray();
        for (var length = 0; length <= name.Length; length++)
        {
            for (var at = 0; at < length; at++)
            {
                foreach (var flip in new byte[] { 0x20, 0x01, 0x40 })
                {
                    var other = name[..length];
                    other[at] ^= flip;
                    var expected = System.Text.Ascii.EqualsIgnoreCase(name.AsSpan(0, length), other);
                    Assert.True(expected == HttpAscii.EqualsIgnoreCase(name.AsSpan(0, length), other), $"length {length}, byte {at} ^ {flip:x2}");
                }
            }
            Assert.True(HttpAscii.EqualsIgnoreCase(name.AsSpan(0, length), name[..length]));
        }
    }

    [Theory]
    [InlineData("application/json", true)]
    [InlineData("application/JSON; charset=utf-8", true)]
    [InlineData("application/problem+Json", true)]
    [InlineData("text/plain", false)]
    [InlineData("jso", false)]
    [InlineData("j", false)]
    [InlineData("jjson", true)]
    [InlineData("application/jso", false)]
    public void ContainsIgnoreCase_finds_the_word_in_any_case(string text, bool expected)
        => Assert.Equal(expected, HttpAscii.ContainsIgnoreCase(Encoding.ASCII.GetBytes(text), "json"u8));
}
