using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

// sse-latency: added latency per SSE event, direct vs through the gateway (and nginx when installed),
// plus the gateway's memory per idle stream. Everything on 127.0.0.1; bounded (< 2 min).
//
// 1. A Kestrel SSE upstream in this process; every event carries its send time (Stopwatch ticks),
//    and the client is in this process too, so one clock measures send -> receive.
// 2. The gateway binary (EDGEPROXY_BIN, default dist/edgeproxy) routed to it.
// 3. Per target: BACKGROUND streams (default 200) each receiving an event every 100 ms, plus
//    MEASURED streams (default 20) each receiving EVENTS events (default 100) every 20 ms; the
//    latency of every measured event is recorded. Added latency = target percentile - direct percentile.
// 3b. Paired (the closer measure of "added latency per event"): each measured stream through a proxy
//    has a twin straight to the upstream, and the upstream writes every event to both at the same
//    moment (which one first alternates per event). The added latency of an event is its arrival
//    through the proxy minus its arrival direct, so noise that delays both (the box, the client,
//    the upstream) cancels out; reported as percentiles of those per-event differences. The
//    separate runs above measure the direct path and the proxy minutes apart on a box whose own
//    p99 moves by milliseconds between runs.
// 4. IDLE streams (default 2000) opened through the gateway, each past its first event: VmRSS of
//    the gateway before and after, divided by the number of streams.
var background = Env("BACKGROUND", 200);
var measured = Env("MEASURED", 20);
var events = Env("EVENTS", 100);
var idle = Env("IDLE", 2000);
var warmupMs = Env("WARMUP_MS", 500);
var repo = FindRepo();
var gatewayBin = Environment.GetEnvironmentVariable("EDGEPROXY_BIN") ?? Path.Combine(repo, "dist", "edgeproxy");
if (!File.Exists(gatewayBin))
{
    Console.Error.WriteLine($"sse-latency: gateway binary not found at {gatewayBin} (./build.sh, or set EDGEPROXY_BIN)");
    return 2;
}
var deadline = Stopwatch.StartNew();
var temp = Directory.CreateTempSubdirectory("sse-latency");
var processes = new List<Process>();
try
{
    // 1. Upstream.
    var builder = WebApplication.CreateSlimBuilder();
    builder.Logging.ClearProviders();
    builder.WebHost.ConfigureKestrel(o => o.Listen(IPAddress.Loopback, 0));
    var upstream = builder.Build();
    upstream.MapGet("/v1/stream", async (HttpContext context, int count, int intervalMs) =>
    {
        context.Response.ContentType = "text/event-stream";
        context.Response.Headers.CacheControl = "no-cache";
        await context.Response.StartAsync(context.RequestAborted);
        try
        {
            // count 0: one event, then hold the stream open (idle) until the client goes.
            for (var i = 0; count == 0 ? i < 1 : i < count; i++)
            {
                if (i > 0)
                {
                    await Task.Delay(intervalMs, context.RequestAborted);
                }
                var line = "data: " + Stopwatch.GetTimestamp().ToString(CultureInfo.InvariantCulture) + "\n\n";
                await context.Response.WriteAsync(line, context.RequestAborted);
                await context.Response.Body.FlushAsync(context.RequestAborted);
            }
            if (count == 0)
            {
                await Task.Delay(Timeout.Infinite, context.RequestAborted);
            }
        }
        catch (OperationCanceledException)
        {
        }
    });
    // Paired streams: the first request of a pair waits; the second writes each event to both.
    var pairs = new System.Collections.Concurrent.ConcurrentDictionary<string, PairSlot>();
    upstream.MapGet("/v1/pair", async (HttpContext context, string pair, int count, int intervalMs) =>
    {
        context.Response.ContentType = "text/event-stream";
        context.Response.Headers.CacheControl = "no-cache";
        await context.Response.StartAsync(context.RequestAborted);
        var slot = pairs.GetOrAdd(pair, _ => new PairSlot());
        if (slot.Join(context.Response) is not { } first)
        {
            await slot.Done.Task.WaitAsync(context.RequestAborted).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            return;
        }
        try
        {
            for (var i = 0; i < count; i++)
            {
                if (i > 0)
                {
                    await Task.Delay(intervalMs, context.RequestAborted);
                }
                var line = "data: " + i.ToString(CultureInfo.InvariantCulture) + "\n\n";
                var (a, b) = i % 2 == 0 ? (first, context.Response) : (context.Response, first);
                await a.WriteAsync(line, context.RequestAborted);
                await a.Body.FlushAsync(context.RequestAborted);
                await b.WriteAsync(line, context.RequestAborted);
                await b.Body.FlushAsync(context.RequestAborted);
            }
        }
        catch (OperationCanceledException)
        {
        }
        finally
        {
            slot.Done.TrySetResult();
            pairs.TryRemove(pair, out _);
        }
    });
    await upstream.StartAsync();
    var upstreamPort = new Uri(upstream.Urls.First()).Port;

    // 2. Gateway.
    var gatewayPort = FreePort();
    var config = Path.Combine(temp.FullName, "backends.json");
    File.WriteAllText(config, """{"services":{"sse":{"models":{"m":{"backends":[{"id":"up","name":"sse upstream","url":"http://127.0.0.1:PORT","weight":1}]}}}}}""".Replace("PORT", upstreamPort.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal));
    var gateway = Start(gatewayBin, "", new()
    {
        ["PORT"] = gatewayPort.ToString(CultureInfo.InvariantCulture), ["BACKENDS_CONFIG_PATH"] = config, ["BACKEND_API_KEY"] = "",
        ["LOG_LEVEL"] = "WARNING", ["HEALTH_CHECK_INTERVAL"] = "60", ["MAX_CONNECTIONS"] = "10000", ["REQUEST_TIMEOUT"] = "120",
    });
    processes.Add(gateway);
    var targets = new List<(string Name, string Url, Process? Process)>
    {
        ("direct", $"http://127.0.0.1:{upstreamPort}/v1/stream", null),
        ("edgeproxy", $"http://127.0.0.1:{gatewayPort}/sse/m/v1/stream", gateway),
    };
    var nginx = new[] { "/usr/sbin/nginx", "/usr/bin/nginx" }.FirstOrDefault(File.Exists);
    if (nginx is not null)
    {
        var nginxPort = FreePort();
        var prefix = temp.FullName;
        File.WriteAllText(Path.Combine(prefix, "nginx.conf"), $$"""
            daemon off; master_process off; worker_processes 1; pid {{prefix}}/nginx.pid; error_log {{prefix}}/nginx.err warn;
            events { worker_connections 8192; }
            http {
              access_log off; client_body_temp_path {{prefix}}/cb; proxy_temp_path {{prefix}}/pt;
              fastcgi_temp_path {{prefix}}/ft; uwsgi_temp_path {{prefix}}/ut; scgi_temp_path {{prefix}}/st;
              upstream up { server 127.0.0.1:{{upstreamPort}}; keepalive 64; }
              server { listen 127.0.0.1:{{nginxPort}};
                location /sse/m/ { proxy_pass http://up/; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; proxy_read_timeout 120s; } }
            }
            """);
        var proc = Start(nginx, $"-p {prefix} -e {prefix}/nginx.err -c {prefix}/nginx.conf", []);
        processes.Add(proc);
        targets.Add(("nginx", $"http://127.0.0.1:{nginxPort}/sse/m/v1/stream", proc));
    }
    using var client = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = int.MaxValue, UseProxy = false, PooledConnectionIdleTimeout = TimeSpan.FromSeconds(5) })
    {
        Timeout = TimeSpan.FromMinutes(2),
    };
    foreach (var (name, url, _) in targets)
    {
        await WaitReadyAsync(client, url + "?count=1&intervalMs=0", name);
    }

    // 3. Latency per target, same load for each.
    Console.WriteLine($"sse-latency: {measured} measured streams x {events} events every 20 ms, with {background} background streams (an event every 100 ms each); loopback; {Environment.ProcessorCount} cpus");
    Console.WriteLine();
    Console.WriteLine($"{"target",-10} {"p50_ms",8} {"p99_ms",8} {"max_ms",8} {"added_p50",10} {"added_p99",10} {"added_max",10}");
    double[]? direct = null;
    string? gcNote = null;
    foreach (var (name, url, _) in targets)
    {
        using var stop = new CancellationTokenSource();
        var bg = Enumerable.Range(0, background).Select(_ => DrainAsync(client, url + "?count=100000&intervalMs=100", null, stop.Token)).ToList();
        await Task.Delay(warmupMs);
        var samples = new List<double>[measured];
        var gcBefore = name == "edgeproxy" ? await GcFiguresAsync(client, gatewayPort) : null;
        var runs = Enumerable.Range(0, measured).Select(i => DrainAsync(client, url + $"?count={events}&intervalMs=20", samples[i] = [], CancellationToken.None)).ToList();
        await Task.WhenAll(runs);
        if (gcBefore is { } b0 && await GcFiguresAsync(client, gatewayPort) is { } b1)
        {
            gcNote = $"edgeproxy GC during the measured streams: {b1.Gen0 - b0.Gen0} gen0 / {b1.Gen1 - b0.Gen1} gen1 / {b1.Gen2 - b0.Gen2} gen2 collections, {(b1.PauseSeconds - b0.PauseSeconds) * 1000:0.0} ms paused in total";
        }
        stop.Cancel();
        await Task.WhenAll(bg);
        var all = samples.SelectMany(s => s).Order().ToArray();
        direct ??= all;
        Console.WriteLine($"{name,-10} {Pct(all, 50),8:0.000} {Pct(all, 99),8:0.000} {all[^1],8:0.000} {Pct(all, 50) - Pct(direct, 50),10:+0.000;-0.000} {Pct(all, 99) - Pct(direct, 99),10:+0.000;-0.000} {all[^1] - direct[^1],10:+0.000;-0.000}");
    }

    if (gcNote is not null)
    {
        Console.WriteLine(gcNote);
    }

    // 3b. Paired: each proxy against the direct path, event by event, under the same background load.
    Console.WriteLine();
    Console.WriteLine($"paired: {measured} streams x {events} events every 20 ms, each through the proxy and straight to the upstream at once; added = arrival through the proxy - arrival direct, per event");
    Console.WriteLine($"{"target",-10} {"added_p50",10} {"added_p99",10} {"added_max",10} {"events",7}");
    var directBase = targets[0].Url.Replace("/v1/stream", "/v1/pair", StringComparison.Ordinal);
    foreach (var (name, url, _) in targets.Skip(1))
    {
        using var stop = new CancellationTokenSource();
        var bg = Enumerable.Range(0, background).Select(_ => DrainAsync(client, url + "?count=100000&intervalMs=100", null, stop.Token)).ToList();
        await Task.Delay(warmupMs);
        var pairBase = url.Replace("/v1/stream", "/v1/pair", StringComparison.Ordinal);
        var added = new List<double>[measured];
        var runs = Enumerable.Range(0, measured).Select(i => PairAsync(client, $"{name}-{i}", directBase, pairBase, events, added[i] = [])).ToList();
        await Task.WhenAll(runs);
        stop.Cancel();
        await Task.WhenAll(bg);
        var all = added.SelectMany(a => a).Order().ToArray();
        Console.WriteLine($"{name,-10} {Pct(all, 50),10:+0.000;-0.000} {Pct(all, 99),10:+0.000;-0.000} {all[^1],10:+0.000;-0.000} {all.Length,7}");
    }

    // 4. Gateway memory per idle stream.
    Console.WriteLine();
    var before = VmRssKb(gateway.Id);
    using (var hold = new CancellationTokenSource())
    {
        var opened = 0;
        var streams = new List<Task>(idle);
        var firstEvent = new SemaphoreSlim(0);
        for (var i = 0; i < idle; i++)
        {
            streams.Add(HoldAsync(client, $"http://127.0.0.1:{gatewayPort}/sse/m/v1/stream?count=0&intervalMs=0", firstEvent, hold.Token));
        }
        var open = Stopwatch.StartNew();
        while (opened < idle && open.Elapsed < TimeSpan.FromSeconds(45))
        {
            if (await firstEvent.WaitAsync(TimeSpan.FromSeconds(1)))
            {
                opened++;
            }
        }
        await Task.Delay(1000);
        var after = VmRssKb(gateway.Id);
        Console.WriteLine($"edgeproxy idle streams: {opened}/{idle} open; VmRSS {before / 1024.0:0.0} MB -> {after / 1024.0:0.0} MB; {(after - before) / (double)Math.Max(1, opened):0.0} KB per idle stream (goal <= 64)");
        hold.Cancel();
        await Task.WhenAll(streams);
    }
    Console.WriteLine($"(took {deadline.Elapsed.TotalSeconds:0} s)");
    await upstream.StopAsync();
    return 0;
}
finally
{
    foreach (var p in processes)
    {
        try
        {
            p.Kill(entireProcessTree: true);
            p.WaitForExit(5000);
        }
        catch (InvalidOperationException)
        {
        }
    }
    temp.Delete(recursive: true);
}

static async Task DrainAsync(HttpClient client, string url, List<double>? samples, CancellationToken cancel)
{
    try
    {
        using var response = await client.GetAsync(url, HttpCompletionOption.ResponseHeadersRead, cancel);
        response.EnsureSuccessStatusCode();
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancel), Encoding.UTF8);
        while (await reader.ReadLineAsync(cancel) is { } line)
        {
            var now = Stopwatch.GetTimestamp();
            if (samples is not null && line.StartsWith("data: ", StringComparison.Ordinal))
            {
                var sent = long.Parse(line.AsSpan(6), CultureInfo.InvariantCulture);
                samples.Add(Stopwatch.GetElapsedTime(sent, now).TotalMilliseconds);
            }
        }
    }
    catch (OperationCanceledException) when (cancel.IsCancellationRequested)
    {
    }
}

// One paired stream: the same events read through the proxy and direct; per event, the difference of the arrivals (ms).
static async Task PairAsync(HttpClient client, string pair, string directBase, string proxyBase, int events, List<double> added)
{
    var query = $"?pair={pair}&count={events}&intervalMs=20";
    var direct = new long[events];
    var proxied = new long[events];
    await Task.WhenAll(ArrivalsAsync(client, directBase + query, direct), ArrivalsAsync(client, proxyBase + query, proxied));
    for (var i = 0; i < events; i++)
    {
        if (direct[i] != 0 && proxied[i] != 0)
        {
            added.Add(Stopwatch.GetElapsedTime(direct[i], proxied[i]).TotalMilliseconds);
        }
    }
}

static async Task ArrivalsAsync(HttpClient client, string url, long[] arrivals)
{
    using var response = await client.GetAsync(url, HttpCompletionOption.ResponseHeadersRead);
    response.EnsureSuccessStatusCode();
    using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(), Encoding.UTF8);
    while (await reader.ReadLineAsync() is { } line)
    {
        var now = Stopwatch.GetTimestamp();
        if (line.StartsWith("data: ", StringComparison.Ordinal) && int.TryParse(line.AsSpan(6), CultureInfo.InvariantCulture, out var index) && index < arrivals.Length)
        {
            arrivals[index] = now;
        }
    }
}

static async Task HoldAsync(HttpClient client, string url, SemaphoreSlim firstEvent, CancellationToken cancel)
{
    try
    {
        using var response = await client.GetAsync(url, HttpCompletionOption.ResponseHeadersRead, cancel);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancel), Encoding.UTF8);
        await reader.ReadLineAsync(cancel);
        firstEvent.Release();
        await reader.ReadLineAsync(cancel);
        await reader.ReadLineAsync(cancel);
    }
    catch (Exception ex) when (ex is OperationCanceledException or HttpRequestException or IOException)
    {
    }
}

static async Task WaitReadyAsync(HttpClient client, string url, string name)
{
    var sw = Stopwatch.StartNew();
    while (true)
    {
        try
        {
            using var r = await client.GetAsync(url);
            if (r.IsSuccessStatusCode)
            {
                return;
            }
        }
        catch (HttpRequestException)
        {
        }
        if (sw.Elapsed > TimeSpan.FromSeconds(15))
        {
            throw new InvalidOperationException($"{name} did not answer {url}");
        }
        await Task.Delay(50);
    }
}

static double Pct(double[] sorted, double p) => sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p / 100 * sorted.Length) - 1)];

static long VmRssKb(int pid)
{
    foreach (var line in File.ReadLines($"/proc/{pid}/status"))
    {
        if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
        {
            return long.Parse(line.AsSpan(6).Trim().TrimEnd("kB").Trim(), CultureInfo.InvariantCulture);
        }
    }
    return 0;
}

// The gateway's GC counters from /metrics (edgeproxy_gc_collections_total, edgeproxy_gc_pause_seconds_total).
static async Task<(long Gen0, long Gen1, long Gen2, double PauseSeconds)?> GcFiguresAsync(HttpClient client, int port)
{
    try
    {
        var text = await client.GetStringAsync($"http://127.0.0.1:{port}/metrics");
        double Value(string prefix) => text.Split('\n').Where(l => l.StartsWith(prefix, StringComparison.Ordinal))
            .Select(l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture)).FirstOrDefault();
        return ((long)Value("edgeproxy_gc_collections_total{generation=\"0\"}"), (long)Value("edgeproxy_gc_collections_total{generation=\"1\"}"),
            (long)Value("edgeproxy_gc_collections_total{generation=\"2\"}"), Value("edgeproxy_gc_pause_seconds_total"));
    }
    catch (HttpRequestException)
    {
        return null;
    }
}

static Process Start(string file, string arguments, Dictionary<string, string> env)
{
    var info = new ProcessStartInfo(file, arguments) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
    foreach (var (k, v) in env)
    {
        info.Environment[k] = v;
    }
    var process = Process.Start(info)!;
    process.OutputDataReceived += (_, _) => { };
    process.ErrorDataReceived += (_, e) => { if (e.Data is { Length: > 0 }) { Console.Error.WriteLine($"[{Path.GetFileName(file)}] {e.Data}"); } };
    process.BeginOutputReadLine();
    process.BeginErrorReadLine();
    return process;
}

static int FreePort()
{
    using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
    socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
    return ((IPEndPoint)socket.LocalEndPoint!).Port;
}

static int Env(string name, int fallback)
    => int.TryParse(Environment.GetEnvironmentVariable(name), out var v) && v > 0 ? v : fallback;

static string FindRepo()
{
    for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
    {
        if (File.Exists(Path.Combine(dir.FullName, "EdgeProxy.sln")))
        {
            return dir.FullName;
        }
    }
    return Directory.GetCurrentDirectory();
}

/// <summary>The two requests of a paired stream: the first to arrive is kept until the second writes to both.</summary>
sealed class PairSlot
{
    private HttpResponse? _first;
    private readonly Lock _gate = new();

    public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Null for the first request of the pair (it waits for <see cref="Done"/>); the first's response for the second.</summary>
    public HttpResponse? Join(HttpResponse response)
    {
        lock (_gate)
        {
            if (_first is null)
            {
                _first = response;
                return null;
            }
            return _first;
        }
    }
}
