using System.Text;

namespace EdgeProxy.Forwarding;

/// <summary>
/// The request's Connection field as it was on the wire, for the general path. Kestrel rewrites a
/// Connection value whose only option it knows is keep-alive, close or upgrade to that one token
/// before the application runs (its HttpHeaders.ParseConnection swaps in an interned value), so
/// `Connection: keep-alive, X-Foo` reaches the dispatcher as `keep-alive` and the gateway could not
/// remove X-Foo, which RFC 9110 §7.6.1 requires of a proxy. Kestrel decodes each Connection line
/// with the encoding <see cref="Select"/> names (KestrelServerOptions.RequestHeaderEncodingSelector),
/// so this encoding sees the raw bytes: it refuses what <see cref="HttpSyntax.IsRequestFieldValue"/>
/// refuses (Kestrel answers 400, as it does for any undecodable field) and keeps the value in an
/// async-local, which flows from Kestrel's parse of the head into the request's application code
/// (Kestrel restores a clean execution context before each request, so nothing leaks to the next).
/// The forwarder joins it with Kestrel's own value (a line Kestrel reused from the previous request
/// is not decoded again) and removes the fields named there.
/// </summary>
internal sealed class ConnectionFieldCapture : Encoding
{
    private static readonly ConnectionFieldCapture Instance = new();

    private static readonly AsyncLocal<string?> Captured = new();

    /// <summary>KestrelServerOptions.RequestHeaderEncodingSelector: this encoding for Connection, Kestrel's default for every other field.</summary>
    public static Encoding? Select(string fieldName) => fieldName.Equals("Connection", StringComparison.OrdinalIgnoreCase) ? Instance : null;

    /// <summary>The current request's Connection lines as received (joined with commas), or null when Kestrel decoded none.</summary>
    public static string? Raw => Captured.Value;

    public override string GetString(byte[] bytes, int index, int count) => Decode(bytes.AsSpan(index, count));

    public override unsafe int GetCharCount(byte* bytes, int count) => count;

    public override unsafe int GetChars(byte* bytes, int byteCount, char* chars, int charCount)
    {
        var value = Decode(new ReadOnlySpan<byte>(bytes, byteCount));
        value.CopyTo(new Span<char>(chars, charCount));
        return value.Length;
    }

    public override int GetCharCount(byte[] bytes, int index, int count) => count;

    public override int GetChars(byte[] bytes, int byteIndex, int byteCount, char[] chars, int charIndex)
    {
        var value = Decode(bytes.AsSpan(byteIndex, byteCount));
        value.CopyTo(chars.AsSpan(charIndex));
        return value.Length;
    }

    /// <summary>One Connection line: checked, kept for the request, returned as Kestrel's value.</summary>
    private static string Decode(ReadOnlySpan<byte> bytes)
    {
        if (!HttpSyntax.IsRequestFieldValue(bytes))
        {
            throw new DecoderFallbackException("The Connection field has bytes a field value may not have.");
        }
        var value = Latin1.GetString(bytes);
        var earlier = Captured.Value;
        Captured.Value = earlier is null ? value : earlier + ", " + value;
        return value;
    }

    public override int GetByteCount(char[] chars, int index, int count) => count;

    public override int GetBytes(char[] chars, int charIndex, int charCount, byte[] bytes, int byteIndex)
        => Latin1.GetBytes(chars, charIndex, charCount, bytes, byteIndex);

    public override int GetMaxByteCount(int charCount) => charCount;

    public override int GetMaxCharCount(int byteCount) => byteCount;
}
