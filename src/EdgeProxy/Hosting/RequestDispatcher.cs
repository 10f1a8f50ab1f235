using System.Text.Json;
using EdgeProxy.Auth;
using EdgeProxy.Configuration;
using EdgeProxy.Dashboard;
using EdgeProxy.Forwarding;
using EdgeProxy.Health;
using EdgeProxy.Observability;
using EdgeProxy.Routing;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace EdgeProxy.Hosting;

/// <summary>
/// The gateway's single terminal middleware. It replaces endpoint routing on purpose: the proxy
/// route is parsed straight from the raw request target (no allocation, no re-encoding) and the
/// handful of fixed endpoints are exact string matches. Order per request: (1) request id,
/// (2) admission (<see cref="RequestAdmission"/>), (3) CORS, (4) fixed endpoints, (5) proxy: parse,
/// authenticate, look up, forward.
/// </summary>
internal sealed partial class RequestDispatcher(
    GatewaySettings settings,
    RouteTableProvider routes,
    GatewayKeyAuthenticator authenticator,
    HttpForwarder forwarder,
    DashboardPage dashboard,
    HealthEventsEndpoint healthEvents,
    MetricsEndpoint metricsExporter,
    ShutdownDrain drain,
    TimeProvider time,
    ILogger<RequestDispatcher> logger)
{
    private readonly bool _corsAny = settings.CorsAllowOrigins.Contains("*");

    public async Task InvokeAsync(HttpContext context)
    {
        var request = context.Request;
        var response = context.Response;

        // 1. Request id: the client's when well-formed, else new; on every response (error bodies
        //    read it back from the response header).
        var requestId = RequestIds.FromRequestOrNew(request);
        response.Headers[RequestIds.HeaderName] = requestId;

        // 2. Admission: what the fast path's parser refuses is refused here too, on every path.
        if (RefuseInadmissibleAsync(context) is { } refusal)
        {
            await refusal.ConfigureAwait(false);
            return;
        }

        // The dedicated metrics port serves /metrics and nothing else.
        if (settings.MetricsPort != 0 && context.Connection.LocalPort == settings.MetricsPort)
        {
            await ServeMetricsPortAsync(context).ConfigureAwait(false);
            return;
        }

        // 3. CORS (contract: open by default, restrictable). Preflights are answered here, unauthenticated.
        if (request.Headers.Origin.Count > 0 && ApplyCors(context) && IsPreflight(request))
        {
            response.StatusCode = StatusCodes.Status204NoContent;
            return;
        }

        try
        {
            // 4. Fixed endpoints, else 5. the proxy route.
            await (ServeFixedEndpointAsync(context) ?? ProxyAsync(context, requestId)).ConfigureAwait(false);
        }
        catch (Exception ex) when (!response.HasStarted && ex is not OperationCanceledException)
        {
            LogUnhandled(logger, requestId, ex.GetType().Name, ex.Message);
            await ErrorResponses.WriteAsync(context, 500, "internal_error", "Internal gateway error.").ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Writes the refusal when <see cref="RequestAdmission"/> rejects the request, else null. Returns the
    /// write's task without awaiting it, so the request keeps one async frame.
    /// </summary>
    private static Task? RefuseInadmissibleAsync(HttpContext context)
    {
        if (RequestAdmission.Check(context) is not { } refusal)
        {
            return null;
        }
        if (refusal.Status == StatusCodes.Status405MethodNotAllowed)
        {
            context.Response.Headers.Allow = HttpSyntax.AllowedMethods;
        }
        return ErrorResponses.WriteAsync(context, refusal.Status, refusal.Code, refusal.Message);
    }

    /// <summary>The dedicated metrics port: GET or HEAD /metrics, 404 for anything else.</summary>
    private Task ServeMetricsPortAsync(HttpContext context)
    {
        var request = context.Request;
        return request.Path.Value == "/metrics" && (HttpMethods.IsGet(request.Method) || HttpMethods.IsHead(request.Method))
            ? metricsExporter.ServeAsync(context, dedicatedPort: true)
            : ErrorResponses.WriteAsync(context, 404, "route_not_found", "This port serves /metrics only.");
    }

    /// <summary>
    /// Starts serving a GET or HEAD of a fixed endpoint (dashboard, health, readiness, status, metrics)
    /// and returns its task; null when the request is not for one, so it goes to the proxy route.
    /// </summary>
    private Task? ServeFixedEndpointAsync(HttpContext context)
    {
        var request = context.Request;
        if (!HttpMethods.IsGet(request.Method) && !HttpMethods.IsHead(request.Method))
        {
            return null;
        }
        var path = request.Path.Value ?? "/";
        switch (path)
        {
            case "/":
            case "/index.html":
                return dashboard.ServeAsync(context);
            case "/health":
                return WriteBodyAsync(context, JsonContentType, HealthBody);
            case "/ready":
                // From the shutdown signal on, not ready: a load balancer that still reaches this
                // process (on a connection opened before) takes it out of rotation.
                var table = routes.Current;
                var draining = drain.Draining;
                context.Response.StatusCode = draining ? StatusCodes.Status503ServiceUnavailable : StatusCodes.Status200OK;
                return WriteJsonAsync(context, new ReadyStatus { Status = draining ? "shutting_down" : "ready", Services = table.Config.Services.Count, Models = table.Config.ModelCount, Backends = table.Config.BackendCount }, GatewayJsonContext.Default.ReadyStatus);
            case "/api/health/status":
                return WriteJsonAsync(context, HealthStatusReport.Build(routes.Current.States, time, queues: routes.Current.Queues), GatewayJsonContext.Default.HealthStatusDocument);
            case "/api/health/events":
                return healthEvents.ServeAsync(context);
            case "/metrics" when settings.MetricsPort == 0:
                return metricsExporter.ServeAsync(context);
        }
        if (path.StartsWith("/api/health/status/", StringComparison.Ordinal))
        {
            return ServiceStatusAsync(context, path["/api/health/status/".Length..]);
        }
        return null;
    }

    private async Task ProxyAsync(HttpContext context, string requestId)
    {
        var request = context.Request;
        var rawTarget = context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpRequestFeature>()?.RawTarget;
        if (string.IsNullOrEmpty(rawTarget) || rawTarget[0] != '/')
        {
            // Absolute-form or asterisk-form target: use the parsed (re-encoded) path.
            rawTarget = request.PathBase.Add(request.Path).ToUriComponent() + request.QueryString.ToUriComponent();
        }
        if (!GatewayPath.TryParse(rawTarget, out var target))
        {
            await ErrorResponses.WriteAsync(context, 404, "route_not_found",
                "Not found. Proxy routes have the form /{service}/{model}[/{path}].").ConfigureAwait(false);
            return;
        }
        if (!authenticator.IsAuthorized(request))
        {
            await UnauthorizedAsync(context).ConfigureAwait(false);
            return;
        }
        if (GatewayPath.HasDotSegment(target.Remainder))
        {
            // Forwarded raw, a dot-segment would be resolved by the backend and could climb above
            // the path of its configured URL; clients never need one (their own stacks remove them).
            await ErrorResponses.WriteAsync(context, 400, "invalid_path", "Dot-segments ('.' or '..') are not allowed in proxied paths.").ConfigureAwait(false);
            return;
        }
        // Percent-encoded names (e.g. a ':' in a model tag) match their decoded config names.
        var encoded = target.Service.Contains('%') || target.Model.Contains('%');
        ReadOnlySpan<char> service = encoded ? Uri.UnescapeDataString(target.Service.ToString()) : target.Service;
        ReadOnlySpan<char> model = encoded ? Uri.UnescapeDataString(target.Model.ToString()) : target.Model;
        var table = routes.Current;
        if (!table.TryGetModel(service, model, out var route))
        {
            await NotFoundAsync(context, service.ToString(), table.HasService(service) ? model.ToString() : null).ConfigureAwait(false);
            return;
        }
        await forwarder.ForwardAsync(context, route, target.Remainder.ToString(), requestId).ConfigureAwait(false);
    }

    /// <summary>The 404 for a <paramref name="model"/> the service lacks, or (model null) for a service not configured.</summary>
    private static Task NotFoundAsync(HttpContext context, string service, string? model = null)
        => model is not null
            ? ErrorResponses.WriteAsync(context, 404, "model_not_found", $"Model '{Printable(model)}' is not configured for service '{Printable(service)}'.")
            : ErrorResponses.WriteAsync(context, 404, "service_not_found", $"Service '{Printable(service)}' is not configured.");

    private async Task ServiceStatusAsync(HttpContext context, string service)
    {
        if (!authenticator.IsAuthorized(context.Request))
        {
            await UnauthorizedAsync(context).ConfigureAwait(false);
            return;
        }
        service = Uri.UnescapeDataString(service);
        var table = routes.Current;
        if (!table.HasService(service))
        {
            await NotFoundAsync(context, service).ConfigureAwait(false);
            return;
        }
        await WriteJsonAsync(context, HealthStatusReport.Build(table.States, time, service, table.Queues), GatewayJsonContext.Default.HealthStatusDocument).ConfigureAwait(false);
    }

    /// <summary>The 401 of every endpoint that takes a key: a Bearer challenge and <paramref name="message"/>.</summary>
    internal static Task UnauthorizedAsync(HttpContext context,
        string message = "Missing or invalid API key. Send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'.")
    {
        context.Response.Headers.WWWAuthenticate = "Bearer";
        return ErrorResponses.WriteAsync(context, 401, "invalid_api_key", message);
    }

    /// <summary>
    /// GET /health's body: every part is a constant, so it is encoded once. Serializing it per request
    /// made the first probe after start build the JSON serializer's metadata for it (converters,
    /// options, attribute reflection), a visible share of start-up.
    /// </summary>
    internal static readonly byte[] HealthBody = System.Text.Encoding.UTF8.GetBytes(
        "{\"status\":\"ok\",\"service\":\"" + HealthStatusReport.ServiceName + "\",\"version\":\"" + GatewayVersion.Value + "\"}");

    private static Task WriteJsonAsync<T>(HttpContext context, T value, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> typeInfo)
        => WriteBodyAsync(context, JsonContentType, JsonSerializer.SerializeToUtf8Bytes(value, typeInfo));

    private const string JsonContentType = "application/json; charset=utf-8";

    /// <summary>A fixed endpoint's whole body, not to be cached; HEAD gets the headers only.</summary>
    internal static async Task WriteBodyAsync(HttpContext context, string contentType, byte[] bytes)
    {
        var response = context.Response;
        response.ContentType = contentType;
        response.Headers.CacheControl = "no-store";
        response.ContentLength = bytes.Length;
        if (!HttpMethods.IsHead(context.Request.Method))
        {
            await response.Body.WriteAsync(bytes, context.RequestAborted).ConfigureAwait(false);
        }
    }

    /// <summary>Adds CORS response headers; false when the origin is not allowed (no CORS headers then).</summary>
    private bool ApplyCors(HttpContext context)
    {
        var origin = context.Request.Headers.Origin.ToString();
        var headers = context.Response.Headers;
        if (_corsAny)
        {
            headers.AccessControlAllowOrigin = "*";
        }
        else if (settings.CorsAllowOrigins.Contains(origin, StringComparer.OrdinalIgnoreCase))
        {
            headers.AccessControlAllowOrigin = origin;
            headers.Vary = "Origin";
        }
        else
        {
            return false;
        }
        headers.AccessControlExposeHeaders = "X-Request-ID";
        if (IsPreflight(context.Request))
        {
            headers.AccessControlAllowMethods = HttpSyntax.AllowedMethods;
            var requested = context.Request.Headers.AccessControlRequestHeaders;
            headers.AccessControlAllowHeaders = requested.Count > 0 ? requested.ToString() : "Authorization, X-API-Key, Content-Type";
            headers.AccessControlMaxAge = "600";
        }
        return true;
    }

    private static bool IsPreflight(HttpRequest request)
        => HttpMethods.IsOptions(request.Method) && request.Headers.AccessControlRequestMethod.Count > 0;

    /// <summary>Echoes a client-supplied name safely (bounded, printable) in an error message.</summary>
    private static string Printable(string value) => string.Concat(value.Take(100).Select(c => char.IsControl(c) ? '?' : c));
}
