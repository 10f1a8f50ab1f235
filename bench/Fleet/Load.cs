// Closed-loop multi-turn chat load. `--sessions` [32] sessions each hold one conversation at a time:
// a system prompt shared with other sessions (`--system-prompts` [4] distinct ones, `--system-min`
// [300] to `--system-max` [1500] tokens), then turns of a user message (`--user-min` [16] to
// `--user-max` [1024] tokens, log-uniform) and the streamed answer (`max_tokens` `--answer-min` [8] to
// `--answer-max` [512], log-uniform), all of the history resent each turn; `--think-min`/`--think-max`
// [0.1/0.5 s] of think time between turns; after `--max-turns` [8] turns the session starts a new
// conversation. Each session has its own HTTP connection and, with `--ips many`, its own source
// address 127.0.1.N (`--ips one`: all from 127.0.0.1). Sessions issue turns for `--duration` [30] s;
// turns in flight then finish (bounded by `--grace` [60] s).
//
// Measured: TTFT (send to the first SSE data event), end-to-end time, completion tokens (from the
// usage chunk), the backend that answered (X-Fleet-Backend), errors by status; the backends'
// /metrics (scraped each second and at the end) give the prefix-cache hit ratio and the peak queue.
// `--kill-pid P --kill-at S`: SIGKILL process P S seconds into the run (a backend dying mid-run).
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace EdgeProxy.Fleet;

public sealed class LoadGenerator
{
    private sealed class BackendScrape
    {
        public required string Id;
        public required string Url;
        public double Queries;
        public double Hits;
        public double MaxWaiting;
        public bool Seen;
    }

    private readonly Uri _url;
    private readonly int _sessions;
    private readonly bool _manyIps;
    private readonly double _duration;
    private readonly double _grace;
    private readonly int _seed;
    private readonly double _thinkMin;
    private readonly double _thinkMax;
    private readonly int _maxTurns;
    private readonly int _userMin;
    private readonly int _userMax;
    private readonly int _answerMin;
    private readonly int _answerMax;
    private readonly string[] _systemPrompts;
    private readonly List<BackendScrape> _backends = [];
    private readonly List<TurnRec> _records = [];
    private readonly Lock _recLock = new();
    private readonly Stopwatch _clock = new();
    private volatile bool _killed;

    private LoadGenerator(Options o)
    {
        _url = new Uri(o.StrOrNull("url") ?? throw new ArgumentException("load needs --url"));
        _sessions = o.Int("sessions", 32);
        _manyIps = o.Str("ips", "many") switch
        {
            "many" => true,
            "one" => false,
            var x => throw new ArgumentException($"--ips many|one, found '{x}'"),
        };
        _duration = o.Dbl("duration", 30);
        _grace = o.Dbl("grace", 60);
        _seed = o.Int("seed", 1);
        _thinkMin = o.Dbl("think-min", 0.1);
        _thinkMax = o.Dbl("think-max", 0.5);
        _maxTurns = o.Int("max-turns", 8);
        _userMin = o.Int("user-min", 16);
        _userMax = o.Int("user-max", 1024);
        _answerMin = o.Int("answer-min", 8);
        _answerMax = o.Int("answer-max", 512);
        var k = Math.Max(1, o.Int("system-prompts", 4));
        var sysMin = o.Int("system-min", 300);
        var sysMax = o.Int("system-max", 1500);
        _systemPrompts = new string[k];
        for (var i = 0; i < k; i++)
        {
            var len = k == 1 ? sysMin : sysMin + (sysMax - sysMin) * i / (k - 1);
            _systemPrompts[i] = $"You are assistant number {i}. " + Vocab.Text(new Random(1000 + i), len);
        }
        foreach (var part in o.Str("backends", "").Split(',', StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = part.IndexOf('=');
            if (eq <= 0)
            {
                throw new ArgumentException($"--backends id=url,...; found '{part}'");
            }
            _backends.Add(new BackendScrape { Id = part[..eq], Url = part[(eq + 1)..].TrimEnd('/') });
        }
    }

    public static async Task<int> RunAsync(Options o)
    {
        var gen = new LoadGenerator(o);
        var killPid = o.Int("kill-pid", 0);
        var killAt = o.Dbl("kill-at", 0);
        using var admin = new HttpClient { Timeout = TimeSpan.FromSeconds(3) };
        foreach (var b in gen._backends)
        {
            try
            {
                (await admin.PostAsync(b.Url + "/admin/reset", null)).Dispose();
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                Console.Error.WriteLine($"fleet load: reset of {b.Id} failed: {e.Message}");
            }
        }

        gen._clock.Start();
        using var stop = new CancellationTokenSource();
        var scraper = gen.ScrapeLoopAsync(admin, stop.Token);
        Task killer = Task.CompletedTask;
        if (killPid > 0 && killAt > 0)
        {
            killer = Task.Run(async () =>
            {
                await Task.Delay(TimeSpan.FromSeconds(killAt));
                await gen.ScrapeAsync(admin);   // keep the victim's last counters
                try
                {
                    using var p = Process.GetProcessById(killPid);
                    p.Kill();
                    // "after the kill" = sent once the process is gone (its socket no longer accepts)
                    // (a zombie counts as gone: the script that started it reaps it later).
                    for (var i = 0; i < 400 && !Gone(killPid); i++)
                    {
                        await Task.Delay(5);
                    }
                    gen._killed = true;
                    Console.Error.WriteLine($"fleet load: killed pid {killPid} at {gen._clock.Elapsed.TotalSeconds:0.0} s");
                }
                catch (Exception e) when (e is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception)
                {
                    Console.Error.WriteLine($"fleet load: could not kill pid {killPid}: {e.Message}");
                }
            });
        }

        var sessions = new Task[gen._sessions];
        for (var i = 0; i < sessions.Length; i++)
        {
            var s = i;
            sessions[i] = Task.Run(() => gen.SessionAsync(s));
        }
        var all = Task.WhenAll(sessions);
        var bound = Task.Delay(TimeSpan.FromSeconds(gen._duration + gen._grace));
        if (await Task.WhenAny(all, bound) == bound)
        {
            Console.Error.WriteLine("fleet load: grace period over with turns still in flight; those count as errors (timeout)");
        }
        var wall = gen._clock.Elapsed.TotalSeconds;
        await killer;
        stop.Cancel();
        try
        {
            await scraper;
        }
        catch (OperationCanceledException)
        {
        }
        await gen.ScrapeAsync(admin);
        gen.Report(o, wall);
        return 0;
    }

    private static bool Gone(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var close = stat.LastIndexOf(')');
            return close < 0 || close + 2 >= stat.Length || stat[close + 2] is 'Z' or 'X';
        }
        catch (IOException)
        {
            return true;
        }
        catch (UnauthorizedAccessException)
        {
            return true;
        }
    }

    private async Task ScrapeLoopAsync(HttpClient http, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            await Task.Delay(1000, ct);
            await ScrapeAsync(http);
        }
    }

    private async Task ScrapeAsync(HttpClient http)
    {
        foreach (var b in _backends)
        {
            try
            {
                var text = await http.GetStringAsync(b.Url + "/metrics");
                double q = 0, h = 0, w = 0;
                foreach (var line in text.Split('\n'))
                {
                    if (line.Length == 0 || line[0] == '#')
                    {
                        continue;
                    }
                    var sp = line.LastIndexOf(' ');
                    if (sp < 0 || !double.TryParse(line.AsSpan(sp + 1), NumberStyles.Float, CultureInfo.InvariantCulture, out var v))
                    {
                        continue;
                    }
                    if (line.StartsWith("vllm:prefix_cache_queries_total", StringComparison.Ordinal))
                    {
                        q = v;
                    }
                    else if (line.StartsWith("vllm:prefix_cache_hits_total", StringComparison.Ordinal))
                    {
                        h = v;
                    }
                    else if (line.StartsWith("fleet:num_requests_waiting_max", StringComparison.Ordinal))
                    {
                        w = v;
                    }
                }
                lock (b)
                {
                    // A restarted backend starts from zero: keep the larger (counters only grow in a run).
                    b.Queries = Math.Max(b.Queries, q);
                    b.Hits = Math.Max(b.Hits, h);
                    b.MaxWaiting = Math.Max(b.MaxWaiting, w);
                    b.Seen = true;
                }
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                // down (killed): keep its last values
            }
        }
    }

    private static double LogUniform(Random rng, int min, int max) =>
        Math.Exp(Math.Log(min) + rng.NextDouble() * (Math.Log(max) - Math.Log(min)));

    /// <summary>many: 127.0.1.1, 127.0.1.2, ... (then 127.0.2.x); one: 127.0.0.1.</summary>
    private IPAddress SourceAddress(int session) =>
        _manyIps ? new IPAddress(new byte[] { 127, 0, (byte)(1 + session / 250), (byte)(1 + session % 250) }) : IPAddress.Loopback;

    private async Task SessionAsync(int session)
    {
        var rng = new Random(_seed * 7919 + session);
        var source = SourceAddress(session);
        using var handler = new SocketsHttpHandler
        {
            UseProxy = false,
            AutomaticDecompression = DecompressionMethods.None,
            PooledConnectionLifetime = Timeout.InfiniteTimeSpan,
            PooledConnectionIdleTimeout = TimeSpan.FromSeconds(60),
            ConnectTimeout = TimeSpan.FromSeconds(5),
            ConnectCallback = async (ctx, ct) =>
            {
                var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                try
                {
                    s.Bind(new IPEndPoint(source, 0));
                    await s.ConnectAsync(ctx.DnsEndPoint, ct);
                    return new NetworkStream(s, ownsSocket: true);
                }
                catch
                {
                    s.Dispose();
                    throw;
                }
            },
        };
        using var http = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(_duration + _grace) };
        var system = _systemPrompts[session % _systemPrompts.Length];

        // Sessions start spread over the first 2 s, as users arrive.
        await Task.Delay(TimeSpan.FromSeconds(rng.NextDouble() * 2));
        var history = new List<(string Role, string Content)>();
        var turns = 0;
        while (_clock.Elapsed.TotalSeconds < _duration)
        {
            if (turns == _maxTurns)
            {
                history.Clear();
                turns = 0;
            }
            var user = Vocab.Text(rng, (int)LogUniform(rng, _userMin, _userMax));
            var maxTokens = (int)LogUniform(rng, _answerMin, _answerMax);
            var body = BuildBody(system, history, user, maxTokens);
            var sent = _clock.Elapsed.TotalMilliseconds;
            var rec = await TurnAsync(http, body);
            rec.SentMs = sent;
            rec.Turn = turns;
            rec.Session = session;
            lock (_recLock)
            {
                _records.Add(rec);
            }
            if (rec.Status == 200 && rec.Error is null)
            {
                history.Add(("user", user));
                history.Add(("assistant", rec.Answer));
                turns++;
            }
            else
            {
                history.Clear();   // a failed turn: the user starts over
                turns = 0;
            }
            await Task.Delay(TimeSpan.FromSeconds(_thinkMin + rng.NextDouble() * (_thinkMax - _thinkMin)));
        }
    }

    private static byte[] BuildBody(string system, List<(string Role, string Content)> history, string user, int maxTokens)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            w.WriteString("model", "fleet-m");
            w.WriteBoolean("stream", true);
            w.WriteStartObject("stream_options");
            w.WriteBoolean("include_usage", true);
            w.WriteEndObject();
            w.WriteNumber("max_tokens", maxTokens);
            w.WriteStartArray("messages");
            void Msg(string role, string content)
            {
                w.WriteStartObject();
                w.WriteString("role", role);
                w.WriteString("content", content);
                w.WriteEndObject();
            }
            Msg("system", system);
            foreach (var (role, content) in history)
            {
                Msg(role, content);
            }
            Msg("user", user);
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return ms.ToArray();
    }

    private async Task<TurnRec> TurnAsync(HttpClient http, byte[] body)
    {
        var rec = new TurnRec { AfterKill = _killed };
        var t0 = _clock.Elapsed.TotalMilliseconds;
        var answer = new StringBuilder();
        try
        {
            using var req = new HttpRequestMessage(HttpMethod.Post, _url) { Content = new ByteArrayContent(body) };
            req.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
            using var resp = await http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead);
            rec.Status = (int)resp.StatusCode;
            if (resp.Headers.TryGetValues("X-Fleet-Backend", out var ids))
            {
                rec.Backend = ids.FirstOrDefault();
            }
            if (rec.Status != 200)
            {
                await resp.Content.ReadAsByteArrayAsync();
                rec.Error = rec.Status.ToString(CultureInfo.InvariantCulture);
                rec.E2eMs = _clock.Elapsed.TotalMilliseconds - t0;
                return rec;
            }
            using var stream = await resp.Content.ReadAsStreamAsync();
            using var reader = new StreamReader(stream, Encoding.UTF8, false, 16384);
            var done = false;
            string? line;
            while ((line = await reader.ReadLineAsync()) is not null)
            {
                if (!line.StartsWith("data:", StringComparison.Ordinal))
                {
                    continue;
                }
                if (rec.TtftMs < 0)
                {
                    rec.TtftMs = _clock.Elapsed.TotalMilliseconds - t0;
                }
                var data = line.AsSpan(5).Trim();
                if (data.SequenceEqual("[DONE]"))
                {
                    done = true;
                    break;
                }
                var c = data.IndexOf("\"content\":\"");
                if (c >= 0)
                {
                    var rest = data[(c + 11)..];
                    var end = rest.IndexOf('"');
                    if (end > 0)
                    {
                        answer.Append(rest[..end]);
                    }
                }
                rec.PromptTokens = Math.Max(rec.PromptTokens, IntAfter(data, "\"prompt_tokens\":"));
                rec.CachedTokens = Math.Max(rec.CachedTokens, IntAfter(data, "\"cached_tokens\":"));
                var u = data.IndexOf("\"completion_tokens\":");
                if (u >= 0)
                {
                    var rest = data[(u + 20)..];
                    var end = rest.IndexOfAny(',', '}');
                    if (end > 0 && int.TryParse(rest[..end], NumberStyles.Integer, CultureInfo.InvariantCulture, out var n))
                    {
                        rec.CompletionTokens = n;
                    }
                }
                if (rec.Backend is null)
                {
                    var f = data.IndexOf("\"system_fingerprint\":\"");
                    if (f >= 0)
                    {
                        var rest = data[(f + 22)..];
                        var end = rest.IndexOf('"');
                        if (end > 0)
                        {
                            rec.Backend = rest[..end].ToString();
                        }
                    }
                }
            }
            rec.E2eMs = _clock.Elapsed.TotalMilliseconds - t0;
            if (!done)
            {
                rec.Error = "cut";   // the stream ended (or was cut) without [DONE]
            }
            rec.Answer = answer.ToString().Trim();
        }
        catch (HttpRequestException e)
        {
            rec.E2eMs = _clock.Elapsed.TotalMilliseconds - t0;
            rec.Error = rec.Status == 0 ? "conn" : "cut";
            if (rec.Status == 0 && Environment.GetEnvironmentVariable("FLEET_DEBUG") == "1")
            {
                Console.Error.WriteLine("fleet load: " + e.Message);
            }
        }
        catch (IOException)
        {
            rec.E2eMs = _clock.Elapsed.TotalMilliseconds - t0;
            rec.Error = rec.Status == 0 ? "conn" : "cut";
        }
        catch (TaskCanceledException)
        {
            rec.E2eMs = _clock.Elapsed.TotalMilliseconds - t0;
            rec.Error = "timeout";
        }
        return rec;
    }

    private static int IntAfter(ReadOnlySpan<char> data, string name)
    {
        var at = data.IndexOf(name);
        if (at < 0)
        {
            return 0;
        }
        var rest = data[(at + name.Length)..];
        var end = rest.IndexOfAny(',', '}');
        return end > 0 && int.TryParse(rest[..end], NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) ? n : 0;
    }

    private sealed class TurnRec
    {
        public double SentMs;
        public int Session;
        public int Turn;
        public int PromptTokens;
        public int CachedTokens;
        public double TtftMs = -1;
        public double E2eMs;
        public int Status;
        public string? Backend;
        public int CompletionTokens;
        public string? Error;
        public bool AfterKill;
        public string Answer = "";
    }

    private static double Pct(List<double> sorted, double p) =>
        sorted.Count == 0 ? double.NaN : sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Count) - 1, 0, sorted.Count - 1)];

    private void Report(Options o, double wallSeconds)
    {
        List<TurnRec> recs;
        lock (_recLock)
        {
            recs = [.. _records];
        }
        var ok = recs.Where(r => r.Status == 200 && r.Error is null).ToList();
        var ttft = ok.Select(r => r.TtftMs).Order().ToList();
        var e2e = ok.Select(r => r.E2eMs).Order().ToList();
        var tokens = ok.Sum(r => (long)r.CompletionTokens);
        var tps = tokens / wallSeconds;
        double q = 0, h = 0, peak = 0;
        foreach (var b in _backends)
        {
            q += b.Queries;
            h += b.Hits;
            peak = Math.Max(peak, b.MaxWaiting);
        }
        var hit = q > 0 ? 100 * h / q : double.NaN;
        var share = _backends.Count > 0
            ? string.Join("/", _backends.Select(b => (100.0 * ok.Count(r => r.Backend == b.Id) / Math.Max(1, ok.Count)).ToString("0", CultureInfo.InvariantCulture)))
            : "-";
        var errors = recs.Where(r => r.Error is not null).GroupBy(r => r.Error!).OrderBy(g => g.Key, StringComparer.Ordinal)
            .Select(g => $"{g.Key}×{g.Count()}").ToList();
        var fivexx = recs.Count(r => r.Status >= 500);
        var label = o.Str("label", "run");
        // With a kill: errors of turns sent after the kill (a healthy proxy has none; turns in flight on
        // the killed backend at that moment may fail whatever the proxy does once it delivered them).
        var killNote = o.Int("kill-pid", 0) > 0
            ? $" (sent after the kill: {recs.Count(r => r.AfterKill && r.Error is not null)} failed)"
            : "";
        string Ms(double v) => double.IsNaN(v) ? "-" : v.ToString("0", CultureInfo.InvariantCulture);
        var row = $"| {label} | {ok.Count} | {Ms(Pct(ttft, 0.5))} | {Ms(Pct(ttft, 0.9))} | {Ms(Pct(ttft, 0.99))} | {Ms(Pct(e2e, 0.99))} | " +
                  $"{tps.ToString("0", CultureInfo.InvariantCulture)} | {(double.IsNaN(hit) ? "-" : hit.ToString("0.0", CultureInfo.InvariantCulture))} | " +
                  $"{share} | {peak.ToString("0", CultureInfo.InvariantCulture)} | {(errors.Count == 0 ? "0" : string.Join(" ", errors))}{killNote} |";
        Console.WriteLine(row);
        if (o.StrOrNull("turns") is { } turnsFile)
        {
            // One line per turn, for looking into a tail: when sent, which turn of its chat, where, what it cost.
            File.WriteAllLines(turnsFile, recs.OrderBy(r => r.SentMs).Select(r => string.Join(',',
                r.SentMs.ToString("0", CultureInfo.InvariantCulture), r.Session, r.Turn, r.Backend ?? "-", r.Status, r.Error ?? "",
                r.TtftMs.ToString("0", CultureInfo.InvariantCulture), r.E2eMs.ToString("0", CultureInfo.InvariantCulture), r.PromptTokens, r.CachedTokens)).Prepend("sent_ms,session,turn,backend,status,error,ttft_ms,e2e_ms,prompt_tokens,cached_tokens"));
        }
        if (o.StrOrNull("row") is { } rowFile)
        {
            File.AppendAllText(rowFile, row + "\n");
        }
        if (o.StrOrNull("json") is { } jsonFile)
        {
            using var ms = new MemoryStream();
            using (var w = new Utf8JsonWriter(ms))
            {
                w.WriteStartObject();
                w.WriteString("label", label);
                w.WriteString("ips", _manyIps ? "many" : "one");
                w.WriteNumber("sessions", _sessions);
                w.WriteNumber("duration_s", _duration);
                w.WriteNumber("wall_s", Math.Round(wallSeconds, 2));
                w.WriteNumber("requests", recs.Count);
                w.WriteNumber("ok", ok.Count);
                w.WriteNumber("ttft_p50_ms", Math.Round(Pct(ttft, 0.5), 1));
                w.WriteNumber("ttft_p90_ms", Math.Round(Pct(ttft, 0.9), 1));
                w.WriteNumber("ttft_p99_ms", Math.Round(Pct(ttft, 0.99), 1));
                w.WriteNumber("e2e_p50_ms", Math.Round(Pct(e2e, 0.5), 1));
                w.WriteNumber("e2e_p99_ms", Math.Round(Pct(e2e, 0.99), 1));
                w.WriteNumber("completion_tokens", tokens);
                w.WriteNumber("tokens_per_s", Math.Round(tps, 1));
                w.WriteNumber("cache_hit_pct", double.IsNaN(hit) ? -1 : Math.Round(hit, 2));
                w.WriteNumber("peak_queue", peak);
                w.WriteNumber("status_5xx", fivexx);
                w.WriteStartObject("share_pct");
                foreach (var b in _backends)
                {
                    w.WriteNumber(b.Id, Math.Round(100.0 * ok.Count(r => r.Backend == b.Id) / Math.Max(1, ok.Count), 1));
                }
                w.WriteEndObject();
                w.WriteStartObject("errors");
                foreach (var g in recs.Where(r => r.Error is not null).GroupBy(r => r.Error!))
                {
                    w.WriteNumber(g.Key, g.Count());
                }
                w.WriteEndObject();
                w.WriteNumber("errors_after_kill", recs.Count(r => r.AfterKill && r.Error is not null));
                w.WriteEndObject();
            }
            File.AppendAllText(jsonFile, Encoding.UTF8.GetString(ms.ToArray()) + "\n");
        }
    }
}
