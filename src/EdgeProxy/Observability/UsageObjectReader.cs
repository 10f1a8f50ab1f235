using System.Buffers;
using System.Runtime.CompilerServices;

namespace EdgeProxy.Observability;

/// <summary>
/// Reads a usage object in place when it lies whole in one read and has the plain shape backends
/// send (<c>{"prompt_tokens":12,"completion_tokens":1,"total_tokens":13}</c>, with or without nested
/// detail objects). Why: copying the object out and running <see cref="System.Text.Json.Utf8JsonReader"/>
/// over it cost several times more than relaying the body that carried it. The grammar here is a strict
/// subset of JSON — keys and strings of printable ASCII without escapes, integers of up to 18 digits
/// without sign, fraction or exponent, true/false/null, objects up to <see cref="MaxDepth"/> deep —
/// and anything outside it (an escape, an array, a fraction, non-ASCII, an object cut by the read's end)
/// is declined: the caller then captures the object and hands it to the JSON reader as before, so
/// what is counted never differs from what that reader would count.
/// </summary>
internal static class UsageObjectReader
{
    /// <summary>Objects nested deeper than this are declined (the JSON reader allows 64).</summary>
    private const int MaxDepth = 8;

    /// <summary>Longer digit runs are declined (the JSON reader decides whether they fit a long).</summary>
    private const int MaxDigits = 18;

    /// <summary>
    /// The bytes of a plain string: printable ASCII but the quote and the backslash. The first byte
    /// outside them ends the string (a quote) or makes it not plain (an escape, a control byte,
    /// non-ASCII). An all-ASCII set searches several times faster than one naming the bytes that stop.
    /// </summary>
    private static readonly SearchValues<byte> PlainStringBytes = SearchValues.Create(
        Enumerable.Range(0x20, 0x7F - 0x20).Where(b => b is not ('"' or '\\')).Select(b => (byte)b).ToArray());

    /// <summary>
    /// Reads the object that starts at <paramref name="json"/>[0] (a '{'). Returns its length through
    /// the closing brace, or 0 when declined (then the counts mean nothing).
    /// </summary>
    public static int TryRead(ReadOnlySpan<byte> json, out long? prompt, out long? completion)
    {
        prompt = completion = null;
        var depth = 1;
        var at = Space(json, 1);
        if (At(json, at) == (byte)'}')
        {
            return at + 1;
        }
        while (true)
        {
            // member = string ws ':' ws value; the cursor is on the key's opening quote.
            var keyEnd = StringEnd(json, at);
            if (keyEnd < 0)
            {
                return 0;
            }
            var key = json[(at + 1)..(keyEnd - 1)];
            at = Space(json, keyEnd);
            if (At(json, at) != (byte)':')
            {
                return 0;
            }
            at = Space(json, at + 1);
            if (At(json, at) == (byte)'{')
            {
                at = Space(json, at + 1);
                if (++depth > MaxDepth)
                {
                    return 0;
                }
                if (At(json, at) != (byte)'}')
                {
                    continue;   // the nested object's first member
                }
                depth--;
                at++;
            }
            else
            {
                at = Value(json, at, depth == 1 ? key : default, ref prompt, ref completion);
                if (at < 0)
                {
                    return 0;
                }
            }
            at = AfterValue(json, at, ref depth);
            if (at <= 0 || depth == 0)
            {
                return at;
            }
        }
    }

    /// <summary>
    /// After a value: closing braces and then a comma (the cursor goes to the next key), or the outer
    /// object's brace (<paramref name="depth"/> 0, the cursor past it). 0 when neither follows.
    /// </summary>
    private static int AfterValue(ReadOnlySpan<byte> json, int at, ref int depth)
    {
        while (true)
        {
            at = Space(json, at);
            var b = At(json, at++);
            if (b == (byte)',')
            {
                return Space(json, at);
            }
            if (b != (byte)'}')
            {
                return 0;
            }
            if (--depth == 0)
            {
                return at;
            }
        }
    }

    /// <summary>A string, literal or integer at the cursor; returns the index past it, or -1. An integer under <paramref name="key"/> (outermost members only) is kept.</summary>
    private static int Value(ReadOnlySpan<byte> json, int at, ReadOnlySpan<byte> key, ref long? prompt, ref long? completion)
    {
        switch (At(json, at))
        {
            case (byte)'"':
                return StringEnd(json, at);
            case (byte)'t':
                return Literal(json, at, "true"u8);
            case (byte)'f':
                return Literal(json, at, "false"u8);
            case (byte)'n':
                return Literal(json, at, "null"u8);
        }
        var start = at;
        var value = 0L;
        while (at < json.Length && json[at] is >= (byte)'0' and <= (byte)'9')
        {
            value = value * 10 + (json[at] - '0');
            at++;
        }
        var digits = at - start;
        if (digits is 0 or > MaxDigits || (digits > 1 && json[start] == (byte)'0'))
        {
            return -1;   // no integer, a leading zero (not JSON), or one the JSON reader decides on
        }
        if (key.SequenceEqual("prompt_tokens"u8) || key.SequenceEqual("input_tokens"u8))
        {
            prompt = value;
        }
        else if (key.SequenceEqual("completion_tokens"u8) || key.SequenceEqual("output_tokens"u8))
        {
            completion = value;
        }
        return at;
    }

    /// <summary>The index past a plain string's closing quote (the cursor on its opening one), or -1.</summary>
    private static int StringEnd(ReadOnlySpan<byte> json, int at)
    {
        if (At(json, at) != (byte)'"')
        {
            return -1;
        }
        var stop = json[(at + 1)..].IndexOfAnyExcept(PlainStringBytes);
        return stop >= 0 && json[at + 1 + stop] == (byte)'"' ? at + stop + 2 : -1;
    }

    private static int Literal(ReadOnlySpan<byte> json, int at, ReadOnlySpan<byte> literal)
        => json[at..].StartsWith(literal) ? at + literal.Length : -1;

    /// <summary>The byte at <paramref name="at"/>, or 0 (never valid here) past the end.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static byte At(ReadOnlySpan<byte> json, int at) => (uint)at < (uint)json.Length ? json[at] : (byte)0;

    /// <summary>Past JSON whitespace; inlined, as most calls find none (a call each was a sixth of the read).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Space(ReadOnlySpan<byte> json, int at)
    {
        while (at < json.Length && json[at] <= (byte)' ' && json[at] is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n')
        {
            at++;
        }
        return at;
    }
}
