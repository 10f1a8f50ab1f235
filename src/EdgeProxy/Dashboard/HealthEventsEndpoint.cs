using System.Text.Json;
using EdgeProxy.Forwarding;
using EdgeProxy.Health;
using EdgeProxy.Routing;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace EdgeProxy.Dashboard;

/// <summary>
/// `GET /api/health/events`: the status document as server-sent events — at once on connect, then
/// every second and immediately on any health change — so the dashboard is live without polling.
/// The feed ends at the shutdown signal (the browser reconnects after `retry`), so an open dashboard
/// does not hold the drain for all of SHUTDOWN_TIMEOUT.
/// </summary>
internal sealed class HealthEventsEndpoint(RouteTableProvider routes, HealthChangeSignal signal, TimeProvider time, ShutdownDrain drain)
{
    private static readonly TimeSpan Period = TimeSpan.FromSeconds(1);

    public async Task ServeAsync(HttpContext context)
    {
        var response = context.Response;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
        context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        using var ended = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, drain.Stopping);
        var aborted = ended.Token;
        try
        {
            await response.StartAsync(aborted).ConfigureAwait(false);
            // Tell EventSource to reconnect quickly if the gateway restarts.
            await response.Body.WriteAsync("retry: 2000\n\n"u8.ToArray(), aborted).ConfigureAwait(false);
            while (!aborted.IsCancellationRequested)
            {
                var change = signal.NextChange;
                var document = HealthStatusReport.Build(routes.Current.States, time, queues: routes.Current.Queues);
                var json = JsonSerializer.SerializeToUtf8Bytes(document, GatewayJsonContext.Default.HealthStatusDocument);
                await response.Body.WriteAsync(StreamErrorFrames.SseEvent("status"u8, json), aborted).ConfigureAwait(false);
                await Task.WhenAny(change, Task.Delay(Period, time, aborted)).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException)
        {
            // The dashboard went away, or the gateway is shutting down.
        }
    }
}
