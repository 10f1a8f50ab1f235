using Microsoft.AspNetCore.Http.Features;

namespace EdgeProxy.TestBackend;

/// <summary>Request/response endpoints: health, echo, upload, download, status, headers, control.</summary>
internal sealed class BasicEndpoints(BackendState state)
{
    public async Task Health(HttpContext ctx)
    {
        state.HealthChecked();
        int delayMs = state.HealthDelayMs;
        if (delayMs > 0)
        {
            await Task.Delay(delayMs, ctx.RequestAborted);
        }

        int status = state.HealthStatus;
        var body = new HealthBody(status < 400 ? "ok" : "unhealthy", state.Id);
        await Wire.WriteJsonAsync(ctx, body, BackendJson.Relaxed.HealthBody, status);
    }

    public async Task Echo(HttpContext ctx)
    {
        HttpRequest request = ctx.Request;
        (long length, string sha256) = await Wire.HashBodyAsync(request, ctx.RequestAborted);

        var headers = new Dictionary<string, string[]>(StringComparer.Ordinal);
        foreach (var (name, values) in request.Headers)
        {
            headers[name.ToLowerInvariant()] = values.Select(v => v ?? "").ToArray();
        }

        var body = new EchoBody(
            state.Id,
            request.Method,
            // .Value, not ToString(): ToString() re-escapes. Kestrel has already decoded everything but %2F.
            (request.PathBase + request.Path).Value ?? "",
            // The request-target exactly as it came off the wire (before decoding / dot-segment removal).
            ctx.Features.Get<IHttpRequestFeature>()?.RawTarget ?? "",
            request.QueryString.Value ?? "",
            request.Protocol,
            ctx.Connection.Id,
            headers,
            length,
            sha256);
        await Wire.WriteJsonAsync(ctx, body, BackendJson.Relaxed.EchoBody);
    }

    public async Task Upload(HttpContext ctx)
    {
        (long length, string sha256) = await Wire.HashBodyAsync(ctx.Request, ctx.RequestAborted);
        await Wire.WriteJsonAsync(ctx, new UploadBody(state.Id, length, sha256), BackendJson.Relaxed.UploadBody);
    }

    public async Task Download(HttpContext ctx)
    {
        long total = Wire.QueryLong(ctx, "bytes", 0, 0, 1L << 40);
        int delayMs = Wire.QueryInt(ctx, "delayMs", 0, 0, 60_000); // pause between 64 KiB writes (slow server)
        HttpResponse response = ctx.Response;
        response.ContentType = "application/octet-stream";
        if (!Wire.QueryFlag(ctx, "chunked"))
        {
            response.ContentLength = total;
        }

        await response.StartAsync(ctx.RequestAborted);
        CancellationToken ct = ctx.RequestAborted;
        for (long sent = 0; sent < total;)
        {
            int n = (int)Math.Min(Wire.Pattern.Length, total - sent);
            await response.Body.WriteAsync(Wire.Pattern.AsMemory(0, n), ct);
            sent += n;
            if (delayMs > 0)
            {
                await response.Body.FlushAsync(ct);
                await Task.Delay(delayMs, ct);
            }
        }
    }

    public Task Status(HttpContext ctx)
    {
        if (!int.TryParse(ctx.Request.RouteValues["code"] as string, out int code) || code is < 200 or > 599)
        {
            return Wire.BadRequestAsync(ctx, "status code must be 200-599");
        }

        if (code is StatusCodes.Status204NoContent or StatusCodes.Status205ResetContent or StatusCodes.Status304NotModified)
        {
            // Kestrel refuses a body on these (and so does HTTP).
            ctx.Response.StatusCode = code;
            return Task.CompletedTask;
        }

        return Wire.WriteJsonAsync(ctx, new StatusBody(state.Id, code), BackendJson.Relaxed.StatusBody, code);
    }

    /// <summary>
    /// Hop-by-hop headers (RFC 9110 §7.6.1) plus one the Connection header nominates (X-Hop) and one
    /// ordinary header, so tests can check the gateway strips the former and keeps X-Normal.
    /// </summary>
    public Task HeadersOut(HttpContext ctx)
    {
        IHeaderDictionary h = ctx.Response.Headers;
        // Kestrel rewrites or acts on Connection: "keep-alive, X-Hop" goes out as plain "keep-alive",
        // and a value without keep-alive makes Kestrel close the connection after the response. A list
        // holding both keep-alive and upgrade is passed through verbatim and the connection stays reusable.
        h.Connection = Wire.Query(ctx, "connection") ?? "Keep-Alive, Upgrade, X-Hop";
        h.KeepAlive = "timeout=5";
        h["X-Hop"] = "secret";
        h.ProxyAuthenticate = "x";
        h["Proxy-Connection"] = "keep-alive";
        h.Upgrade = "h2c";
        h.TE = "trailers";
        h["X-Normal"] = "yes";

        // ?skip=Connection,Upgrade drops some of them again (e.g. to keep the connection reusable).
        foreach (string name in (Wire.Query(ctx, "skip") ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            h.Remove(name);
        }
        return Wire.WriteJsonAsync(ctx, new StatusBody(state.Id, StatusCodes.Status200OK), BackendJson.Relaxed.StatusBody);
    }

    public Task NotFound(HttpContext ctx) => Wire.WriteJsonAsync(
        ctx,
        new NotFoundBody(state.Id, "not found", ctx.Request.Path.Value ?? ""),
        BackendJson.Relaxed.NotFoundBody,
        StatusCodes.Status404NotFound);

    // ---- /control ----

    public Task Stats(HttpContext ctx) => Wire.WriteJsonAsync(ctx, state.Snapshot(), BackendJson.Relaxed.StatsBody);

    public Task ResetStats(HttpContext ctx)
    {
        state.Reset();
        return Wire.WriteJsonAsync(ctx, state.Snapshot(), BackendJson.Relaxed.StatsBody);
    }

    public Task ControlHealth(HttpContext ctx)
    {
        if (Wire.Query(ctx, "status") is not null)
        {
            int status = Wire.QueryInt(ctx, "status", 0, 0, 999);
            if (status is < 200 or > 599)
            {
                return Wire.BadRequestAsync(ctx, "status must be 200-599");
            }

            state.HealthStatus = status;
        }

        if (Wire.Query(ctx, "delayMs") is not null)
        {
            state.HealthDelayMs = Wire.QueryInt(ctx, "delayMs", 0, 0, 600_000);
        }

        var body = new HealthConfigBody(state.HealthStatus, state.HealthDelayMs);
        return Wire.WriteJsonAsync(ctx, body, BackendJson.Relaxed.HealthConfigBody);
    }

    public Task Ack(HttpContext ctx)
    {
        string? name = Wire.Query(ctx, "gate");
        if (string.IsNullOrEmpty(name) || !long.TryParse(Wire.Query(ctx, "n"), out long n))
        {
            return Wire.BadRequestAsync(ctx, "gate and n are required");
        }

        Gate gate = state.Gates.GetOrAdd(name, static _ => new Gate());
        gate.Ack(n);
        return Wire.WriteJsonAsync(ctx, new AckBody(name, gate.Acked), BackendJson.Relaxed.AckBody);
    }
}
