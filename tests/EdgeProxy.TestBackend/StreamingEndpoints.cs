using System.Diagnostics;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections.Features;

namespace EdgeProxy.TestBackend;

/// <summary>
/// Endpoints that stream, stall or break: what a gateway must pass through unbuffered, time out, or
/// propagate. Client aborts surface as OperationCanceledException from RequestAborted-bound awaits;
/// Program's middleware swallows those and records the abort.
/// </summary>
internal sealed class StreamingEndpoints(BackendState state)
{
    private const int MaxEvents = 1_000_000;

    public async Task Sse(HttpContext ctx)
    {
        int events = Wire.QueryInt(ctx, "events", 3, 0, MaxEvents);
        int delayMs = Wire.QueryInt(ctx, "delayMs", 0, 0, 600_000);
        CancellationToken ct = ctx.RequestAborted;

        Wire.StartEventStream(ctx.Response);
        await ctx.Response.StartAsync(ct); // headers go out even for events=0
        for (int k = 0; k < events; k++)
        {
            if (k > 0 && delayMs > 0)
            {
                await Task.Delay(delayMs, ct);
            }

            await Wire.SendAsync(ctx.Response, Wire.SseFrame(Wire.EventJson(k, state.Id)), ct);
        }

        await Wire.SendDoneAsync(ctx.Response, ct);
    }

    /// <summary>
    /// Event k+1 is only sent after the test acks event k, i.e. proves it received it. A gateway that
    /// buffers the response never delivers event 0, so the stream stalls and ends with "gate timeout".
    /// </summary>
    public async Task SseGated(HttpContext ctx)
    {
        string? name = Wire.Query(ctx, "gate");
        if (string.IsNullOrEmpty(name))
        {
            await Wire.BadRequestAsync(ctx, "gate is required");
            return;
        }

        int events = Wire.QueryInt(ctx, "events", 3, 0, MaxEvents);
        var timeout = TimeSpan.FromMilliseconds(Wire.QueryInt(ctx, "timeoutMs", 30_000, 1, 600_000));
        CancellationToken ct = ctx.RequestAborted;

        // A fresh gate per stream: acks left over from an earlier run with the same name cannot open it.
        var gate = new Gate();
        state.Gates[name] = gate;

        Wire.StartEventStream(ctx.Response);
        await ctx.Response.StartAsync(ct);
        for (int k = 0; k < events; k++)
        {
            if (k > 0 && !await gate.WaitForAckAsync(k - 1, timeout, ct))
            {
                await Wire.SendAsync(ctx.Response, Wire.SseFrame("{\"error\":\"gate timeout\"}"u8), ct);
                return;
            }

            await Wire.SendAsync(ctx.Response, Wire.SseFrame(Wire.EventJson(k, state.Id)), ct);
        }

        await Wire.SendDoneAsync(ctx.Response, ct);
    }

    public async Task Ndjson(HttpContext ctx)
    {
        int lines = Wire.QueryInt(ctx, "lines", 3, 0, MaxEvents);
        int delayMs = Wire.QueryInt(ctx, "delayMs", 0, 0, 600_000);
        CancellationToken ct = ctx.RequestAborted;

        ctx.Response.ContentType = "application/x-ndjson";
        await ctx.Response.StartAsync(ct);
        for (int k = 0; k < lines; k++)
        {
            if (k > 0 && delayMs > 0)
            {
                await Task.Delay(delayMs, ct);
            }

            await Wire.SendAsync(ctx.Response, Wire.NdjsonLine(Wire.EventJson(k, state.Id)), ct);
        }
    }

    /// <summary>Never answers; returns only when the client (or gateway) gives up.</summary>
    public Task Hang(HttpContext ctx) => Task.Delay(Timeout.InfiniteTimeSpan, ctx.RequestAborted);

    /// <summary>Headers and one SSE event, then silence: idle-timeout and disconnect-mid-stream tests.</summary>
    public async Task HangStream(HttpContext ctx)
    {
        CancellationToken ct = ctx.RequestAborted;
        Wire.StartEventStream(ctx.Response);
        await Wire.SendAsync(ctx.Response, Wire.SseFrame(Wire.EventJson(0, state.Id)), ct);
        await Task.Delay(Timeout.InfiniteTimeSpan, ct);
    }

    /// <summary>An event every delayMs until the client goes away (capped at maxMs, then [DONE]).</summary>
    public async Task SseForever(HttpContext ctx)
    {
        int delayMs = Wire.QueryInt(ctx, "delayMs", 100, 1, 600_000);
        long maxMs = Wire.QueryLong(ctx, "maxMs", 600_000, 1, 3_600_000);
        CancellationToken ct = ctx.RequestAborted;
        long started = Stopwatch.GetTimestamp();

        Wire.StartEventStream(ctx.Response);
        for (int k = 0; k < int.MaxValue && Stopwatch.GetElapsedTime(started).TotalMilliseconds < maxMs; k++)
        {
            await Wire.SendAsync(ctx.Response, Wire.SseFrame(Wire.EventJson(k, state.Id)), ct);
            await Task.Delay(delayMs, ct);
        }

        await Wire.SendDoneAsync(ctx.Response, ct);
    }

    /// <summary>Slow to answer (headersMs) and slow mid-body (bodyMs): body is "a", pause, "b".</summary>
    public async Task Slow(HttpContext ctx)
    {
        int headersMs = Wire.QueryInt(ctx, "headersMs", 0, 0, 600_000);
        int bodyMs = Wire.QueryInt(ctx, "bodyMs", 0, 0, 600_000);
        CancellationToken ct = ctx.RequestAborted;

        await Task.Delay(headersMs, ct);
        ctx.Response.ContentType = "text/plain";
        await Wire.SendAsync(ctx.Response, "a"u8.ToArray(), ct);
        await Task.Delay(bodyMs, ct);
        await ctx.Response.Body.WriteAsync("b"u8.ToArray(), ct);
    }

    /// <summary>
    /// Headers, then `after` bytes of well-formed content (whole SSE events / NDJSON lines, or raw
    /// pattern bytes), then the connection is torn down mid-body: the chunked body never gets its
    /// terminating chunk. X-Sent-Bytes says how many body bytes were sent before the break.
    /// Kestrel's Abort() resets the connection (RST); fin=1 half-closes first so the client sees EOF.
    /// </summary>
    public async Task Reset(HttpContext ctx)
    {
        long after = Wire.QueryLong(ctx, "after", 0, 0, 64L << 20);
        string type = Wire.Query(ctx, "type") ?? "raw";
        (string contentType, byte[] body) = type switch
        {
            "sse" => ("text/event-stream", WholeFrames(after, k => Wire.SseFrame(Wire.EventJson(k, state.Id)))),
            "ndjson" => ("application/x-ndjson", WholeFrames(after, k => Wire.NdjsonLine(Wire.EventJson(k, state.Id)))),
            "raw" => ("application/octet-stream", RawBytes((int)after)),
            _ => ("", []),
        };
        if (contentType.Length == 0)
        {
            await Wire.BadRequestAsync(ctx, "type must be sse, ndjson or raw");
            return;
        }

        CancellationToken ct = ctx.RequestAborted;
        ctx.Response.ContentType = contentType;
        ctx.Response.Headers["X-Sent-Bytes"] = body.Length.ToString(System.Globalization.CultureInfo.InvariantCulture);
        await ctx.Response.StartAsync(ct);
        for (int offset = 0; offset < body.Length; offset += Wire.Pattern.Length)
        {
            int n = Math.Min(Wire.Pattern.Length, body.Length - offset);
            await ctx.Response.Body.WriteAsync(body.AsMemory(offset, n), ct);
        }

        await ctx.Response.Body.FlushAsync(ct);

        // FlushAsync only hands the bytes to Kestrel's transport; give the socket a moment to send them,
        // otherwise the abort can discard the tail and the client sees fewer than X-Sent-Bytes bytes.
        int abortDelayMs = Wire.QueryInt(ctx, "abortDelayMs", 100, 0, 10_000);
        await Task.Delay(abortDelayMs, ct);

        ctx.Items[Wire.SelfAbortKey] = true;

        // Kestrel's Abort() closes with a TCP RST. fin=1 first half-closes the socket, so the client reads
        // every byte and then a clean EOF in the middle of the chunked body (truncation rather than reset).
        // Kestrel sees the client close its side and cancels RequestAborted; only then do we tear down.
        if (Wire.QueryFlag(ctx, "fin") && ctx.Features.Get<IConnectionSocketFeature>()?.Socket is Socket socket)
        {
            socket.Shutdown(SocketShutdown.Send);
            try
            {
                await Task.Delay(TimeSpan.FromSeconds(10), ct);
            }
            catch (OperationCanceledException)
            {
                // The client closed after reading to EOF: expected.
            }
        }

        ctx.Abort();
    }

    private static byte[] WholeFrames(long minBytes, Func<int, byte[]> frame)
    {
        using var buffer = new MemoryStream();
        for (int k = 0; k < MaxEvents * 64 && buffer.Length < minBytes; k++)
        {
            buffer.Write(frame(k));
        }

        return buffer.ToArray();
    }

    private static byte[] RawBytes(int length)
    {
        var bytes = new byte[length];
        for (int offset = 0; offset < length; offset += Wire.Pattern.Length)
        {
            Wire.Pattern.AsSpan(0, Math.Min(Wire.Pattern.Length, length - offset)).CopyTo(bytes.AsSpan(offset));
        }

        return bytes;
    }
}
