using System.Diagnostics;
using System.IO.Pipelines;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace EdgeProxy.TestBackend;

/// <summary>Small HTTP helpers shared by the endpoint classes.</summary>
internal static class Wire
{
    /// <summary>HttpContext.Items key: set by handlers that abort the connection on purpose (/reset),
    /// so the abort is not counted as a client disconnect.</summary>
    public static readonly object SelfAbortKey = new();

    /// <summary>64 KiB of the download pattern, byte i = (byte)(i * 31 + 7). The pattern repeats every
    /// 256 bytes, so every 64 KiB-aligned block of any download is exactly this buffer.</summary>
    public static readonly byte[] Pattern = BuildPattern(64 * 1024);

    private static readonly byte[] DoneFrame = "data: [DONE]\n\n"u8.ToArray();

    private static byte[] BuildPattern(int length)
    {
        var pattern = new byte[length];
        for (int i = 0; i < pattern.Length; i++)
        {
            pattern[i] = unchecked((byte)(i * 31 + 7));
        }

        return pattern;
    }

    public static string? Query(HttpContext ctx, string name) =>
        ctx.Request.Query.TryGetValue(name, out var v) && v.Count > 0 ? v.ToString() : null;

    public static bool QueryFlag(HttpContext ctx, string name) =>
        Query(ctx, name) is "1" or "true" or "yes";

    /// <summary>Integer query parameter, clamped so a typo cannot make the backend allocate or wait forever.</summary>
    public static long QueryLong(HttpContext ctx, string name, long fallback, long min, long max) =>
        long.TryParse(Query(ctx, name), out long value) ? Math.Clamp(value, min, max) : fallback;

    public static int QueryInt(HttpContext ctx, string name, int fallback, int min, int max) =>
        (int)QueryLong(ctx, name, fallback, min, max);

    /// <summary>Writes a small JSON body with an exact Content-Length (HEAD: headers only).</summary>
    public static Task WriteJsonAsync<T>(HttpContext ctx, T value, JsonTypeInfo<T> typeInfo, int status = StatusCodes.Status200OK)
    {
        byte[] body = JsonSerializer.SerializeToUtf8Bytes(value, typeInfo);
        HttpResponse response = ctx.Response;
        response.StatusCode = status;
        response.ContentType = "application/json";
        response.ContentLength = body.Length;
        return HttpMethods.IsHead(ctx.Request.Method)
            ? Task.CompletedTask
            : response.Body.WriteAsync(body, ctx.RequestAborted).AsTask();
    }

    public static Task BadRequestAsync(HttpContext ctx, string error) =>
        WriteJsonAsync(ctx, new ErrorBody(error), BackendJson.Relaxed.ErrorBody, StatusCodes.Status400BadRequest);

    /// <summary>Reads the request body to the end without buffering it, hashing as it goes.</summary>
    public static async Task<(long Length, string Sha256)> HashBodyAsync(HttpRequest request, CancellationToken ct)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        long length = 0;
        PipeReader reader = request.BodyReader;

        // Bounded by the body itself: Kestrel completes the reader at its end (or throws on abort).
        while (true)
        {
            ReadResult result = await reader.ReadAsync(ct);
            foreach (ReadOnlyMemory<byte> segment in result.Buffer)
            {
                hash.AppendData(segment.Span);
                length += segment.Length;
            }

            reader.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted || result.IsCanceled)
            {
                break;
            }
        }

        return (length, Convert.ToHexStringLower(hash.GetHashAndReset()));
    }

    public static void StartEventStream(HttpResponse response)
    {
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
    }

    public static byte[] EventJson(int i, string id) =>
        JsonSerializer.SerializeToUtf8Bytes(new StreamEvent(i, Stopwatch.GetTimestamp(), id), BackendJson.Relaxed.StreamEvent);

    /// <summary>"data: {json}\n\n" as one buffer, so an event is never split across writes by us.</summary>
    public static byte[] SseFrame(ReadOnlySpan<byte> json)
    {
        var frame = new byte[6 + json.Length + 2];
        "data: "u8.CopyTo(frame);
        json.CopyTo(frame.AsSpan(6));
        frame[^2] = (byte)'\n';
        frame[^1] = (byte)'\n';
        return frame;
    }

    /// <summary>"{json}\n" for NDJSON.</summary>
    public static byte[] NdjsonLine(ReadOnlySpan<byte> json)
    {
        var line = new byte[json.Length + 1];
        json.CopyTo(line);
        line[^1] = (byte)'\n';
        return line;
    }

    /// <summary>Write and flush, so the bytes leave Kestrel now rather than when its buffer fills.</summary>
    public static async Task SendAsync(HttpResponse response, byte[] bytes, CancellationToken ct)
    {
        await response.Body.WriteAsync(bytes, ct);
        await response.Body.FlushAsync(ct);
    }

    public static Task SendDoneAsync(HttpResponse response, CancellationToken ct) => SendAsync(response, DoneFrame, ct);
}
