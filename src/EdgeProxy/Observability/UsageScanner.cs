using System.Buffers;
using System.Text.Json;

namespace EdgeProxy.Observability;

/// <summary>
/// Reads LLM token usage (`"usage":{"prompt_tokens":…,"completion_tokens":…}`) from a response body
/// as it streams past, without buffering or delaying it: each chunk is scanned after it has been
/// forwarded. Works for a whole JSON answer and for SSE/NDJSON streams where usage comes in the
/// final chunk (OpenAI `stream_options.include_usage`, vLLM, Ollama's OpenAI API) or cumulatively in
/// every chunk — the last usage object seen wins. The key, the colon, the object: any of them may
/// be split across reads.
/// </summary>
internal sealed class UsageScanner
{
    private static ReadOnlySpan<byte> Key => "\"usage\""u8;

    /// <summary>A usage object larger than this is not a usage object we understand; skip it.</summary>
    private const int MaxObjectBytes = 2048;

    private readonly byte[] _tail = new byte[6];
    private int _tailLength;
    private State _state;
    private byte[]? _object;
    private int _objectLength;
    private int _depth;
    private bool _inString;
    private bool _escaped;

    public long? PromptTokens { get; private set; }

    public long? CompletionTokens { get; private set; }

    public bool Found => PromptTokens.HasValue || CompletionTokens.HasValue;

    /// <summary>Returns the pooled capture buffer; the scanner must not observe chunks afterwards (the token counts stay readable).</summary>
    public void Release()
    {
        if (_object is { } buffer)
        {
            _object = null;
            _state = State.Searching;
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Ready for another response (the fast path keeps one scanner per client connection).</summary>
    public void Reset()
    {
        Release();
        _tailLength = 0;
        _state = State.Searching;
        PromptTokens = null;
        CompletionTokens = null;
    }

    public void Observe(ReadOnlySpan<byte> chunk)
    {
        var position = 0;
        if (_state == State.Searching && _tailLength > 0)
        {
            // The key may straddle the previous chunk and this one.
            Span<byte> seam = stackalloc byte[12];
            _tail.AsSpan(0, _tailLength).CopyTo(seam);
            var take = Math.Min(6, chunk.Length);
            chunk[..take].CopyTo(seam[_tailLength..]);
            var index = seam[..(_tailLength + take)].IndexOf(Key);
            if (index >= 0 && index < _tailLength)
            {
                position = index + Key.Length - _tailLength;
                _state = State.AfterKey;
            }
        }
        while (position < chunk.Length)
        {
            if (_state == State.Searching)
            {
                var index = chunk[position..].IndexOf(Key);
                if (index < 0)
                {
                    break;
                }
                position += index + Key.Length;
                _state = State.AfterKey;
                continue;
            }
            position = Step(chunk, position);
        }
        RememberTail(chunk);
    }

    private int Step(ReadOnlySpan<byte> chunk, int position)
    {
        var b = chunk[position];
        switch (_state)
        {
            case State.AfterKey:
                if (b == (byte)':')
                {
                    _state = State.AfterColon;
                }
                else if (!IsSpace(b))
                {
                    _state = State.Searching; // `"usage"` was a value, not a key
                }
                return position + 1;
            case State.AfterColon:
                if (b == (byte)'{')
                {
                    var length = UsageObjectReader.TryRead(chunk[position..Math.Min(chunk.Length, position + MaxObjectBytes)], out var prompt, out var completion);
                    if (length > 0)
                    {
                        // The usual case: the whole object in this read, in the plain shape.
                        Keep(prompt, completion);
                        _state = State.Searching;
                        return position + length;
                    }
                    _object ??= ArrayPool<byte>.Shared.Rent(MaxObjectBytes);
                    _object[0] = b;
                    _objectLength = 1;
                    _depth = 1;
                    _inString = false;
                    _escaped = false;
                    _state = State.InObject;
                }
                else if (!IsSpace(b))
                {
                    _state = State.Searching; // e.g. "usage": null
                }
                return position + 1;
            default:
                return Capture(chunk, position);
        }
    }

    /// <summary>Bytes that change the capture's state outside a string, and inside one.</summary>
    private static readonly SearchValues<byte> Structural = SearchValues.Create("\"{}"u8);
    private static readonly SearchValues<byte> StringEnd = SearchValues.Create("\"\\"u8);

    /// <summary>
    /// The general case (an object split across reads, or not in <see cref="UsageObjectReader"/>'s plain shape):
    /// copies the usage object until its closing brace, a run of ordinary bytes at a time (found
    /// vectorised) rather than byte by byte: quotes and escapes are tracked so braces inside strings
    /// do not count. At <see cref="MaxObjectBytes"/> the object is given up on and searching resumes.
    /// </summary>
    private int Capture(ReadOnlySpan<byte> chunk, int position)
    {
        while (position < chunk.Length)
        {
            var rest = chunk[position..];
            // After a backslash the next byte is taken as it is; otherwise up to the next byte that matters.
            var stop = _escaped ? 0 : rest.IndexOfAny(_inString ? StringEnd : Structural);
            var take = stop < 0 ? rest.Length : stop + 1;
            var room = MaxObjectBytes - _objectLength;
            if (take > room)
            {
                _state = State.Searching;
                return position + room;
            }
            rest[..take].CopyTo(_object.AsSpan(_objectLength));
            _objectLength += take;
            position += take;
            if (_escaped)
            {
                _escaped = false;
                continue;
            }
            if (stop < 0)
            {
                break;
            }
            var b = rest[stop];
            if (_inString)
            {
                if (b == (byte)'\\')
                {
                    _escaped = true;
                }
                else
                {
                    _inString = false;
                }
            }
            else if (b == (byte)'"')
            {
                _inString = true;
            }
            else if (b == (byte)'{')
            {
                _depth++;
            }
            else if (--_depth == 0)
            {
                Parse(_object.AsSpan(0, _objectLength));
                _state = State.Searching;
                return position;
            }
        }
        return position;
    }

    private void Parse(ReadOnlySpan<byte> json)
    {
        long? prompt = null, completion = null;
        try
        {
            var reader = new Utf8JsonReader(json);
            while (reader.Read())
            {
                if (reader.TokenType == JsonTokenType.PropertyName && reader.CurrentDepth == 1)
                {
                    var isPrompt = reader.ValueTextEquals("prompt_tokens"u8) || reader.ValueTextEquals("input_tokens"u8);
                    var isCompletion = reader.ValueTextEquals("completion_tokens"u8) || reader.ValueTextEquals("output_tokens"u8);
                    if (!reader.Read())
                    {
                        break;
                    }
                    if ((isPrompt || isCompletion) && reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var value) && value >= 0)
                    {
                        (isPrompt ? ref prompt : ref completion) = value;
                    }
                    else if (reader.TokenType is JsonTokenType.StartObject or JsonTokenType.StartArray)
                    {
                        reader.Skip();
                    }
                }
            }
        }
        catch (JsonException)
        {
            return;
        }
        Keep(prompt, completion);
    }

    /// <summary>An object that named either count replaces what earlier ones said (the last usage object wins).</summary>
    private void Keep(long? prompt, long? completion)
    {
        if (prompt.HasValue || completion.HasValue)
        {
            PromptTokens = prompt;
            CompletionTokens = completion;
        }
    }

    private void RememberTail(ReadOnlySpan<byte> chunk)
    {
        if (chunk.Length >= _tail.Length)
        {
            chunk[^_tail.Length..].CopyTo(_tail);
            _tailLength = _tail.Length;
            return;
        }
        var keep = Math.Min(_tailLength, _tail.Length - chunk.Length);
        _tail.AsSpan(_tailLength - keep, keep).CopyTo(_tail);
        chunk.CopyTo(_tail.AsSpan(keep));
        _tailLength = keep + chunk.Length;
    }

    private static bool IsSpace(byte b) => b is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n';

    private enum State
    {
        Searching,
        AfterKey,
        AfterColon,
        InObject,
    }
}
