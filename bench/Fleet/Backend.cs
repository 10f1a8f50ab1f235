// A simulated vLLM-like inference backend. Time is slept, not burnt: many of them share a 2-core box
// with the proxy and the load generator without being the bottleneck.
//
// Model (all knobs on the command line, defaults in brackets):
// - `--slots` [8] sequences run at once (the engine's batch); the rest wait in a FIFO queue.
// - Prefill: `--prefill-base-ms` [5] + `--prefill-us` [200] µs per prompt token NOT found in the prefix
//   cache, × (1 + 0.05 × (running − 1)). The first token leaves at the end of prefill (so time to first
//   token = queue wait + prefill).
// - Prefix cache: LRU of `--cache-blocks` [2048] blocks of `--block` [16] tokens, keyed on chained
//   prefix hashes (vLLM's automatic prefix caching). A prompt's hit is its longest cached run of leading
//   blocks. A finished request leaves its prompt + answer in the cache, so a backend that served a
//   conversation's earlier turns answers its next turn with only the new message to prefill.
// - Decode: one token per `--decode-ms` [6] × (1 + `--decode-slowdown` [0.12] × (running − 1)) ms,
//   i.e. a full batch of 8 decodes ~1.8× slower per sequence; sent `--chunk-tokens` [2] tokens per SSE
//   event. The answer has exactly `max_tokens` tokens (the client picks it).
// - OpenAI POST /v1/chat/completions (stream true: SSE chunks, then a usage chunk when asked or always,
//   then [DONE]; stream false: one JSON). Response header X-Fleet-Backend and system_fingerprint name the
//   backend. GET /metrics (vLLM names), GET /health, GET /v1/models, POST /admin/reset (empty cache and
//   counters between runs).
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;

namespace EdgeProxy.Fleet;

public sealed class BackendServer
{
    private readonly string _id;
    private readonly int _slots;
    private readonly int _block;
    private readonly double _prefillUs;
    private readonly double _prefillBaseMs;
    private readonly double _decodeMs;
    private readonly double _decodeSlowdown;
    private readonly int _chunkTokens;
    private readonly SemaphoreSlim _slotSem;
    private readonly LruBlocks _cache;
    private readonly Lock _cacheLock = new();
    private int _running;
    private int _waiting;
    private int _maxWaiting;
    private int _maxRunning;
    private long _queriesTokens;
    private long _hitTokens;
    private long _promptTokens;
    private long _generationTokens;
    private long _success;
    private long _admitted;
    private long _aborted;

    private BackendServer(Options o)
    {
        _id = o.Str("id", "b1");
        _slots = o.Int("slots", 8);
        _block = o.Int("block", 16);
        _prefillUs = o.Dbl("prefill-us", 200);
        _prefillBaseMs = o.Dbl("prefill-base-ms", 5);
        _decodeMs = o.Dbl("decode-ms", 6);
        _decodeSlowdown = o.Dbl("decode-slowdown", 0.12);
        _chunkTokens = Math.Max(1, o.Int("chunk-tokens", 2));
        _slotSem = new SemaphoreSlim(_slots, _slots);
        _cache = new LruBlocks(o.Int("cache-blocks", 2048));
    }

    public static async Task<int> RunAsync(Options o)
    {
        var port = o.Int("port", 0);
        if (port <= 0)
        {
            throw new ArgumentException("backend needs --port");
        }
        var sim = new BackendServer(o);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Listen(IPAddress.Loopback, port);
            k.AddServerHeader = false;
            k.Limits.MinResponseDataRate = null;
            k.Limits.MaxConcurrentConnections = null;
        });
        var app = builder.Build();
        app.MapGet("/health", (RequestDelegate)(ctx => ctx.Response.WriteAsync("{\"status\":\"ok\"}")));
        app.MapGet("/v1/models", (RequestDelegate)(ctx =>
        {
            ctx.Response.ContentType = "application/json";
            return ctx.Response.WriteAsync("{\"object\":\"list\",\"data\":[{\"id\":\"fleet-m\",\"object\":\"model\",\"owned_by\":\"" + sim._id + "\"}]}");
        }));
        app.MapGet("/metrics", (RequestDelegate)(ctx =>
        {
            ctx.Response.ContentType = "text/plain; version=0.0.4";
            return ctx.Response.WriteAsync(sim.Metrics());
        }));
        app.MapPost("/admin/reset", (RequestDelegate)(ctx =>
        {
            sim.Reset();
            return ctx.Response.WriteAsync("{\"reset\":true}");
        }));
        app.MapPost("/v1/chat/completions", (RequestDelegate)sim.ChatAsync);
        Console.Error.WriteLine($"fleet backend {sim._id} on 127.0.0.1:{port}: {sim._slots} slots, cache {sim._cache.Capacity} blocks of {sim._block}");
        await app.RunAsync();
        return 0;
    }

    private void Reset()
    {
        lock (_cacheLock)
        {
            _cache.Clear();
        }
        Interlocked.Exchange(ref _queriesTokens, 0);
        Interlocked.Exchange(ref _hitTokens, 0);
        Interlocked.Exchange(ref _promptTokens, 0);
        Interlocked.Exchange(ref _generationTokens, 0);
        Interlocked.Exchange(ref _success, 0);
        Interlocked.Exchange(ref _admitted, 0);
        Interlocked.Exchange(ref _aborted, 0);
        Volatile.Write(ref _maxWaiting, Volatile.Read(ref _waiting));
        Volatile.Write(ref _maxRunning, Volatile.Read(ref _running));
    }

    private string Metrics()
    {
        var l = $"{{model_name=\"fleet-m\",backend=\"{_id}\"}}";
        int cacheUsed;
        lock (_cacheLock)
        {
            cacheUsed = _cache.Count;
        }
        var sb = new StringBuilder();
        void Line(string type, string name, string value) =>
            sb.Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n').Append(name).Append(l).Append(' ').Append(value).Append('\n');
        Line("gauge", "vllm:num_requests_running", Volatile.Read(ref _running).ToString(CultureInfo.InvariantCulture));
        Line("gauge", "vllm:num_requests_waiting", Volatile.Read(ref _waiting).ToString(CultureInfo.InvariantCulture));
        Line("gauge", "vllm:gpu_cache_usage_perc", (cacheUsed / (double)_cache.Capacity).ToString("0.0000", CultureInfo.InvariantCulture));
        Line("counter", "vllm:prefix_cache_queries_total", Interlocked.Read(ref _queriesTokens).ToString(CultureInfo.InvariantCulture));
        Line("counter", "vllm:prefix_cache_hits_total", Interlocked.Read(ref _hitTokens).ToString(CultureInfo.InvariantCulture));
        Line("counter", "vllm:prompt_tokens_total", Interlocked.Read(ref _promptTokens).ToString(CultureInfo.InvariantCulture));
        Line("counter", "vllm:generation_tokens_total", Interlocked.Read(ref _generationTokens).ToString(CultureInfo.InvariantCulture));
        Line("counter", "vllm:request_success_total", Interlocked.Read(ref _success).ToString(CultureInfo.InvariantCulture));
        Line("counter", "fleet:requests_admitted_total", Interlocked.Read(ref _admitted).ToString(CultureInfo.InvariantCulture));
        Line("counter", "fleet:requests_aborted_total", Interlocked.Read(ref _aborted).ToString(CultureInfo.InvariantCulture));
        Line("gauge", "fleet:num_requests_waiting_max", Volatile.Read(ref _maxWaiting).ToString(CultureInfo.InvariantCulture));
        Line("gauge", "fleet:num_requests_running_max", Volatile.Read(ref _maxRunning).ToString(CultureInfo.InvariantCulture));
        Line("gauge", "fleet:slots", _slots.ToString(CultureInfo.InvariantCulture));
        return sb.ToString();
    }

    private static void Max(ref int field, int value)
    {
        int seen;
        while (value > (seen = Volatile.Read(ref field)) && Interlocked.CompareExchange(ref field, value, seen) != seen)
        {
        }
    }

    private async Task ChatAsync(HttpContext ctx)
    {
        var ct = ctx.RequestAborted;
        var tokens = new List<ulong>(1024);
        var maxTokens = 16;
        var stream = false;
        try
        {
            using (var doc = await JsonDocument.ParseAsync(ctx.Request.Body, default, ct))
            {
                var root = doc.RootElement;
                if (root.TryGetProperty("max_tokens", out var mt) && mt.TryGetInt32(out var m))
                {
                    maxTokens = Math.Clamp(m, 1, 8192);
                }
                stream = root.TryGetProperty("stream", out var st) && st.ValueKind == JsonValueKind.True;
                if (!root.TryGetProperty("messages", out var msgs) || msgs.ValueKind != JsonValueKind.Array)
                {
                    ctx.Response.StatusCode = 400;
                    await ctx.Response.WriteAsync("{\"error\":{\"message\":\"messages required\"}}", ct);
                    return;
                }
                foreach (var msg in msgs.EnumerateArray())
                {
                    var role = msg.TryGetProperty("role", out var r) ? r.GetString() : "user";
                    tokens.Add(Tokens.Hash(role switch { "system" => Tokens.System, "assistant" => Tokens.Assistant, _ => Tokens.User }));
                    if (msg.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String)
                    {
                        Tokens.AddWords(tokens, c.GetString()!);
                    }
                }
            }
        }
        catch (JsonException)
        {
            ctx.Response.StatusCode = 400;
            await ctx.Response.WriteAsync("{\"error\":{\"message\":\"bad json\"}}", ct);
            return;
        }
        catch (OperationCanceledException)
        {
            return;
        }
        catch (IOException)
        {
            return;
        }

        Interlocked.Increment(ref _admitted);
        var slot = _slotSem.WaitAsync(ct);   // SemaphoreSlim queues async waiters FIFO
        if (!slot.IsCompleted)
        {
            Max(ref _maxWaiting, Interlocked.Increment(ref _waiting));
            try
            {
                await slot;
            }
            catch (OperationCanceledException)
            {
                Interlocked.Increment(ref _aborted);
                return;
            }
            finally
            {
                Interlocked.Decrement(ref _waiting);
            }
        }
        var running = Interlocked.Increment(ref _running);
        Max(ref _maxRunning, running);
        try
        {
            await ServeAsync(ctx, tokens, maxTokens, stream, ct);
        }
        catch (Exception e) when (e is OperationCanceledException or IOException)
        {
            Interlocked.Increment(ref _aborted);
        }
        finally
        {
            Interlocked.Decrement(ref _running);
            _slotSem.Release();
        }
    }

    private async Task ServeAsync(HttpContext ctx, List<ulong> tokens, int maxTokens, bool stream, CancellationToken ct)
    {
        var keys = Tokens.BlockKeys(tokens, _block);
        int hitBlocks;
        lock (_cacheLock)
        {
            hitBlocks = _cache.LeadingHits(keys);
        }
        var cached = hitBlocks * _block;
        var uncached = tokens.Count - cached;
        Interlocked.Add(ref _queriesTokens, tokens.Count);
        Interlocked.Add(ref _hitTokens, cached);
        Interlocked.Add(ref _promptTokens, tokens.Count);

        var prefillMs = _prefillBaseMs + uncached * _prefillUs / 1000.0 * (1 + 0.05 * (Volatile.Read(ref _running) - 1));
        await Task.Delay(TimeSpan.FromMilliseconds(prefillMs), ct);
        lock (_cacheLock)
        {
            _cache.Insert(keys);
        }

        // The answer: deterministic in the prompt, so a replay is the same text.
        var seed = keys.Length > 0 ? keys[^1] : (ulong)tokens.Count;
        var rng = new Random((int)(seed ^ (seed >> 32)) ^ maxTokens);
        var answer = new string[maxTokens];
        for (var i = 0; i < maxTokens; i++)
        {
            answer[i] = Vocab.Words[rng.Next(Vocab.Words.Length)];
        }

        var created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var rid = "chatcmpl-" + _id + "-" + Guid.NewGuid().ToString("N")[..12];
        ctx.Response.Headers["X-Fleet-Backend"] = _id;
        if (!stream)
        {
            await DecodeAsync(maxTokens, null, ct);
            ctx.Response.ContentType = "application/json";
            await ctx.Response.WriteAsync(
                $"{{\"id\":\"{rid}\",\"object\":\"chat.completion\",\"created\":{created},\"model\":\"fleet-m\",\"system_fingerprint\":\"{_id}\"," +
                $"\"choices\":[{{\"index\":0,\"message\":{{\"role\":\"assistant\",\"content\":\"{string.Join(' ', answer)}\"}},\"finish_reason\":\"length\"}}]," +
                $"\"usage\":{{\"prompt_tokens\":{tokens.Count},\"completion_tokens\":{maxTokens},\"total_tokens\":{tokens.Count + maxTokens}}}}}", ct);
        }
        else
        {
            ctx.Response.ContentType = "text/event-stream";
            ctx.Response.Headers.CacheControl = "no-cache";
            var head = $"data: {{\"id\":\"{rid}\",\"object\":\"chat.completion.chunk\",\"created\":{created},\"model\":\"fleet-m\",\"system_fingerprint\":\"{_id}\",\"choices\":[{{\"index\":0,\"delta\":{{";
            var sb = new StringBuilder(256);
            async Task Emit(int from, int count)
            {
                sb.Clear().Append(head);
                if (from == 0)
                {
                    sb.Append("\"role\":\"assistant\",");
                }
                sb.Append("\"content\":\"");
                for (var i = from; i < from + count; i++)
                {
                    sb.Append(' ').Append(answer[i]);
                }
                sb.Append("\"},\"finish_reason\":null}]}\n\n");
                await ctx.Response.WriteAsync(sb.ToString(), ct);
                await ctx.Response.Body.FlushAsync(ct);
            }
            await DecodeAsync(maxTokens, Emit, ct);
            await ctx.Response.WriteAsync(
                head + "},\"finish_reason\":\"length\"}]}\n\n" +
                $"data: {{\"id\":\"{rid}\",\"object\":\"chat.completion.chunk\",\"created\":{created},\"model\":\"fleet-m\",\"system_fingerprint\":\"{_id}\",\"choices\":[]," +
                $"\"usage\":{{\"prompt_tokens\":{tokens.Count},\"completion_tokens\":{maxTokens},\"total_tokens\":{tokens.Count + maxTokens}," +
                $"\"prompt_tokens_details\":{{\"cached_tokens\":{cached}}}}}}}\n\n" +
                "data: [DONE]\n\n", ct);
            await ctx.Response.Body.FlushAsync(ct);
        }

        // The finished sequence's KV blocks (prompt, the assistant marker, the answer) stay cached.
        var all = new List<ulong>(tokens.Count + 1 + maxTokens);
        all.AddRange(tokens);
        all.Add(Tokens.Hash(Tokens.Assistant));
        foreach (var w in answer)
        {
            all.Add(Tokens.Hash(w));
        }
        var allKeys = Tokens.BlockKeys(all, _block);
        lock (_cacheLock)
        {
            _cache.Insert(allKeys);
        }
        Interlocked.Add(ref _generationTokens, maxTokens);
        Interlocked.Increment(ref _success);
    }

    /// <summary>Paces the answer: the first chunk leaves at once (prefill made its first token), then
    /// one decode step per token at the batch's current pace; deadlines accumulate, so timer overshoot
    /// does not add up.</summary>
    private async Task DecodeAsync(int maxTokens, Func<int, int, Task>? emit, CancellationToken ct)
    {
        var sw = Stopwatch.StartNew();
        var due = 0.0;
        var sent = 0;
        while (sent < maxTokens)
        {
            var n = Math.Min(sent == 0 ? 1 : _chunkTokens, maxTokens - sent);
            if (sent > 0)
            {
                due += n * _decodeMs * (1 + _decodeSlowdown * (Volatile.Read(ref _running) - 1));
                var wait = due - sw.Elapsed.TotalMilliseconds;
                if (wait >= 1)
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(wait), ct);
                }
            }
            if (emit is not null)
            {
                await emit(sent, n);
            }
            sent += n;
        }
    }
}

/// <summary>LRU set of block keys with a fixed capacity.</summary>
public sealed class LruBlocks(int capacity)
{
    private readonly Dictionary<ulong, LinkedListNode<ulong>> _map = new(capacity);
    private readonly LinkedList<ulong> _order = new();

    public int Capacity { get; } = Math.Max(1, capacity);

    public int Count => _map.Count;

    public void Clear()
    {
        _map.Clear();
        _order.Clear();
    }

    /// <summary>The number of leading blocks present (each one touched, the first last, so that a
    /// prefix is evicted from its end, as vLLM frees a sequence's blocks tail first).</summary>
    public int LeadingHits(ulong[] keys)
    {
        var n = 0;
        while (n < keys.Length && _map.ContainsKey(keys[n]))
        {
            n++;
        }
        for (var i = n - 1; i >= 0; i--)
        {
            var node = _map[keys[i]];
            _order.Remove(node);
            _order.AddFirst(node);
        }
        return n;
    }

    /// <summary>Adds (or touches) every block, the last first: the leading blocks end up the most
    /// recently used.</summary>
    public void Insert(ulong[] keys)
    {
        for (var i = keys.Length - 1; i >= 0; i--)
        {
            var k = keys[i];
            if (_map.TryGetValue(k, out var node))
            {
                _order.Remove(node);
                _order.AddFirst(node);
                continue;
            }
            _map[k] = _order.AddFirst(k);
            while (_map.Count > Capacity)
            {
                var last = _order.Last!;
                _order.RemoveLast();
                _map.Remove(last.Value);
            }
        }
    }
}
