using System.Net;

// The reference floor for bench/load.sh: what a Native AOT "Kestrel terminal middleware + one shared
// HttpMessageInvoker" reverse proxy costs before any gateway feature is added (the design measured in
// /work/shared/PERFORMANCE-NOTES.md), with the same socket and scheduling settings EdgeProxy uses.
// GET /bench/m/<path> -> UPSTREAM/<path>; GET /health -> 200. Nothing else: no request headers are
// forwarded, no auth, balancing, health checks, timeouts, metrics or logs.
if (Environment.GetEnvironmentVariable("DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS") is null)
{
    Environment.SetEnvironmentVariable("DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS", "1");
}
var upstream = Environment.GetEnvironmentVariable("UPSTREAM");
if (string.IsNullOrEmpty(upstream) || !int.TryParse(Environment.GetEnvironmentVariable("PORT"), out var port))
{
    Console.Error.WriteLine("usage: PORT=<port> UPSTREAM=http://127.0.0.1:<port> kestrel-floor");
    return 2;
}

var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = ["--hostBuilder:reloadConfigOnChange=false"] });
builder.Logging.ClearProviders();
builder.WebHost.UseSockets(o => o.UnsafePreferInlineScheduling = true);
builder.WebHost.ConfigureKestrel(o =>
{
    o.AddServerHeader = false;
    o.Listen(IPAddress.Loopback, port);
});
var app = builder.Build();

using var invoker = new HttpMessageInvoker(new SocketsHttpHandler
{
    UseProxy = false,
    AllowAutoRedirect = false,
    UseCookies = false,
    AutomaticDecompression = DecompressionMethods.None,
    ActivityHeadersPropagator = null,
});
var health = """{"status":"ok"}"""u8.ToArray();

app.Run(async context =>
{
    var path = context.Request.Path.Value ?? "/";
    var response = context.Response;
    if (path == "/health")
    {
        response.ContentType = "application/json";
        response.ContentLength = health.Length;
        await response.Body.WriteAsync(health);
        return;
    }
    if (!path.StartsWith("/bench/m/", StringComparison.Ordinal))
    {
        response.StatusCode = 404;
        return;
    }
    using var request = new HttpRequestMessage(HttpMethod.Get, upstream + path["/bench/m".Length..] + context.Request.QueryString);
    using var upstreamResponse = await invoker.SendAsync(request, context.RequestAborted);
    response.StatusCode = (int)upstreamResponse.StatusCode;
    if (upstreamResponse.Content.Headers.ContentType is { } contentType)
    {
        response.ContentType = contentType.ToString();
    }
    if (upstreamResponse.Content.Headers.ContentLength is long length)
    {
        response.ContentLength = length;
    }
    await upstreamResponse.Content.CopyToAsync(response.Body, context.RequestAborted);
});
await app.RunAsync();
return 0;
