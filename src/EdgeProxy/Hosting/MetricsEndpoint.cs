using System.Globalization;
using System.Text;
using EdgeProxy.Auth;
using EdgeProxy.Configuration;
using EdgeProxy.Health;
using EdgeProxy.Observability;
using EdgeProxy.Routing;
using Microsoft.AspNetCore.Http;

namespace EdgeProxy.Hosting;

/// <summary>
/// `GET /metrics`: the exporter's text plus backend health gauges read from the live route table at
/// scrape time. Access: METRICS_KEY when set; otherwise the gateway key when auth is on. On a
/// separate METRICS_PORT only METRICS_KEY applies (bind that port where only the scraper reaches it).
/// </summary>
internal sealed class MetricsEndpoint(PrometheusExporter exporter, RouteTableProvider routes, GatewaySettings settings, GatewayKeyAuthenticator gatewayAuth)
{
    private static readonly (string Name, string Help, Func<BackendState, long> Value)[] Gauges =
    [
        ("edgeproxy_backend_up", "1 when the backend's last active checks passed (healthy), 0 when unhealthy, -1 while unknown.",
            state => state.Status switch { HealthStatus.Healthy => 1, HealthStatus.Unhealthy => 0, _ => -1 }),
        ("edgeproxy_backend_ejected", "1 while passive health keeps the backend out of rotation.", state => state.IsEjected ? 1 : 0),
        ("edgeproxy_backend_in_flight", "Requests in flight to the backend.", state => state.InFlight),
    ];

    private static readonly (string Name, string Help, string Type, Func<QueueStatus, double> Value)[] QueueFamilies =
    [
        ("edgeproxy_queue_depth", "Requests waiting for a slot because every backend of the model that may take them is full.", "gauge", q => q.Waiting),
        ("edgeproxy_queue_admitted_total", "Waits in the model's line that ended with a backend slot.", "counter", q => q.Admitted),
        ("edgeproxy_queue_rejected_total", "Requests answered 429 because the model's line was full or the wait ran out.", "counter", q => q.Rejected),
        ("edgeproxy_queue_wait_seconds_total", "Time requests spent in the model's line, summed over the waits that ended.", "counter",
            q => q.WaitSeconds),
    ];

    private readonly GatewayKeyAuthenticator? _metricsAuth = settings.MetricsKey.Length > 0 ? new GatewayKeyAuthenticator(settings.MetricsKey) : null;

    public Task ServeAsync(HttpContext context, bool dedicatedPort = false)
    {
        var authorized = _metricsAuth is not null ? _metricsAuth.IsAuthorized(context.Request)
            : dedicatedPort || gatewayAuth.IsAuthorized(context.Request);
        return authorized
            ? RequestDispatcher.WriteBodyAsync(context, "text/plain; version=0.0.4; charset=utf-8", Encoding.UTF8.GetBytes(Render()))
            : RequestDispatcher.UnauthorizedAsync(context, "Missing or invalid metrics key.");
    }

    internal string Render() => exporter.Render(RenderBackendGauges);

    private void RenderBackendGauges(StringBuilder sb)
    {
        var table = routes.Current;
        var states = table.States;
        foreach (var (name, help, value) in Gauges)
        {
            PrometheusExporter.Header(sb, name, help, "gauge");
            foreach (var state in states)
            {
                PrometheusExporter.Label(sb.Append(name), "service", state.Service, first: true);
                PrometheusExporter.Label(sb, "model", state.Model, first: false);
                PrometheusExporter.Label(sb, "backend", state.Config.Id, first: false);
                sb.Append("} ").Append(value(state).ToString(CultureInfo.InvariantCulture)).Append('\n');
            }
        }
        var queues = table.Queues.ToList();
        foreach (var (name, help, type, value) in QueueFamilies)
        {
            PrometheusExporter.Header(sb, name, help, type);
            foreach (var (service, model, status) in queues)
            {
                PrometheusExporter.Label(sb.Append(name), "service", service, first: true);
                PrometheusExporter.Label(sb, "model", model, first: false);
                sb.Append("} ").Append(value(status).ToString(CultureInfo.InvariantCulture)).Append('\n');
            }
        }
    }
}
