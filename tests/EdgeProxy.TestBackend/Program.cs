// EdgeProxy.TestBackend: a real HTTP backend process that plays an LLM inference server with
// controllable misbehaviour, for the gateway's functional tests.
//
//   dotnet EdgeProxy.TestBackend.dll --urls http://127.0.0.1:0 --id b1
//
// Once Kestrel is listening it prints exactly one stdout line, "LISTENING http://127.0.0.1:PORT",
// and nothing else ever goes to stdout (logs are warnings+ on stderr). See README.md for endpoints.

using EdgeProxy.TestBackend;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;

var builder = WebApplication.CreateSlimBuilder(args);

// Loopback and a free port unless told otherwise: this process must never listen beyond 127.0.0.0/8.
if (string.IsNullOrEmpty(builder.Configuration["urls"]))
{
    builder.WebHost.UseUrls("http://127.0.0.1:0");
}

string id = builder.Configuration["id"] is { Length: > 0 } configuredId ? configuredId : "backend";

// stdout belongs to the LISTENING handshake; route every log line to stderr, warnings and up only.
builder.Logging.ClearProviders();
builder.Logging.SetMinimumLevel(LogLevel.Warning);
builder.Logging.AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace);

// --tls-cert/--tls-key (PEM): an https backend (the gateway's upstream TLS tests); use --urls https://127.0.0.1:0.
string? tlsCert = builder.Configuration["tls-cert"];
string? tlsKey = builder.Configuration["tls-key"];
if (!string.IsNullOrEmpty(tlsCert) && !string.IsNullOrEmpty(tlsKey))
{
    builder.WebHost.UseKestrelHttpsConfiguration();
}

builder.WebHost.ConfigureKestrel(kestrel =>
{
    if (!string.IsNullOrEmpty(tlsCert) && !string.IsNullOrEmpty(tlsKey))
    {
        // The leaf with its key, and the rest of the file (intermediates) sent as its chain.
        var certificate = System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPemFile(tlsCert, tlsKey);
        var all = new System.Security.Cryptography.X509Certificates.X509Certificate2Collection();
        all.ImportFromPemFile(tlsCert);
        all.RemoveAt(0);
        kestrel.ConfigureHttpsDefaults(https =>
        {
            https.ServerCertificate = certificate;
            https.ServerCertificateChain = all;
        });
    }

    // The gateway under test owns limits and timeouts; the backend must not be the one that trips.
    kestrel.Limits.MaxRequestBodySize = null;
    kestrel.Limits.MinRequestBodyDataRate = null;
    kestrel.Limits.MinResponseDataRate = null;
    kestrel.Limits.MaxRequestHeadersTotalSize = 256 * 1024;
    kestrel.Limits.MaxRequestLineSize = 64 * 1024;
    kestrel.Limits.MaxRequestHeaderCount = 1000;
});

var app = builder.Build();
var state = new BackendState(id);
var basic = new BasicEndpoints(state);
var streaming = new StreamingEndpoints(state);
var openAi = new OpenAiEndpoints(state);

// Runs for every request, matched or not: backend id header, counters, client-abort bookkeeping.
app.Use(async (HttpContext ctx, RequestDelegate next) =>
{
    ctx.Response.Headers["X-Backend-Id"] = id;

    PathString path = ctx.Request.Path;
    // The gateway's own probes (health checks, engine metrics while busy) are not requests to count.
bool counted = !path.StartsWithSegments("/control") && !path.StartsWithSegments("/health") && !path.StartsWithSegments("/metrics");
    if (counted)
    {
        state.RequestStarted(path.Value ?? "/");
    }

    // Client aborts are recorded for requests carrying ?tag=X (under X) and for the hanging endpoints
    // (under their path). Registering on RequestAborted timestamps the abort when Kestrel notices it.
    string? abortTag = Wire.Query(ctx, "tag") is { Length: > 0 } tag ? tag
        : path.Value is "/hang" or "/hang-stream" or "/sse-forever" ? path.Value
        : null;
    using CancellationTokenRegistration onAbort = abortTag is null
        ? default
        : ctx.RequestAborted.Register(() =>
        {
            if (!ctx.Items.ContainsKey(Wire.SelfAbortKey))
            {
                state.RecordAbort(abortTag);
            }
        });

    try
    {
        await next(ctx);
    }
    catch (Exception) when (ctx.RequestAborted.IsCancellationRequested)
    {
        // The client (or the gateway) went away, or /reset aborted on purpose: nothing left to answer.
    }
    finally
    {
        if (counted)
        {
            state.RequestEnded();
        }
    }
});

app.UseRouting();

// Anything routing did not match gets a JSON 404 (a wrong method on a known path stays 405).
app.Use((HttpContext ctx, RequestDelegate next) => ctx.GetEndpoint() is null ? basic.NotFound(ctx) : next(ctx));

string[] getPost = [HttpMethods.Get, HttpMethods.Post];

app.MapMethods("/health", [HttpMethods.Get, HttpMethods.Head], basic.Health);
app.Map("/echo", basic.Echo);
app.Map("/echo/{**rest}", basic.Echo);
app.MapPost("/upload", basic.Upload);
app.MapGet("/download", basic.Download);
app.Map("/status/{code}", basic.Status);
app.MapGet("/headers-out", basic.HeadersOut);

app.MapMethods("/sse", getPost, streaming.Sse);
app.MapMethods("/sse-gated", getPost, streaming.SseGated);
app.MapMethods("/ndjson", getPost, streaming.Ndjson);
app.Map("/hang", streaming.Hang);
app.Map("/hang-stream", streaming.HangStream);
app.Map("/sse-forever", streaming.SseForever);
app.MapGet("/slow", streaming.Slow);
app.Map("/reset", streaming.Reset);

app.MapPost("/v1/chat/completions", openAi.ChatCompletions);
app.MapGet("/v1/models", openAi.Models);

app.MapGet("/control/stats", basic.Stats);
app.MapPost("/control/reset", basic.ResetStats);
app.MapPost("/control/health", basic.ControlHealth);
app.MapPost("/control/ack", basic.Ack);

await app.StartAsync();

// The real bound address (port 0 resolved), read back from the server after it started listening.
string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
Console.Out.WriteLine("LISTENING " + address);
Console.Out.Flush();

await app.WaitForShutdownAsync();
