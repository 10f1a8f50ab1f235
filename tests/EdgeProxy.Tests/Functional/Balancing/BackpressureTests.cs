using System.Diagnostics;
using System.Text.Json.Nodes;
using EdgeProxy.Tests.Infrastructure;

namespace EdgeProxy.Tests.Functional.Balancing;

/// <summary>
/// Backpressure instead of timeouts: when every backend of a model is full (its max_concurrency,
/// or MAX_CONNECTIONS), requests wait in the model's bounded line and are answered 429 with
/// Retry-After when the line is full or the wait runs out; the wait is never the backend's first-byte
/// time and never counts against its health. Every case runs on both request paths and transports.
/// </summary>
public sealed class BackpressureTests
{
    private const string Key = "k-queue";
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(20);

    [Theory]
    [MemberData(nameof(GatewayVariant.All), MemberType = typeof(GatewayVariant))]
    [Trait(Matrix.Trait, Matrix.Variants)]
    public async Task Full_backends_queue_requests_and_a_full_line_answers_429(string variant)
    {
        using var backend = new HoldingBackend();
        await using var gateway = await StartAsync(variant, backend, maxConcurrency: 2, maxQueue: 2, queueTimeout: 30);

        var held = Enumerable.Range(0, 2).Select(i => SendAsync(gateway, $"held-{i}")).ToArray();
        await Poll.UntilAsync(() => backend.InFlight == 2, Deadline, "the backend holding two requests");
        var queued = Enumerable.Range(0, 2).Select(i => SendAsync(gateway, $"queued-{i}")).ToArray();
        await Poll.UntilAsync(async () => (await QueueAsync(gateway))["waiting"]!.GetValue<int>() == 2, Deadline, "two requests in line");

        var refused = await SendAsync(gateway, "refused");
        Assert.True(refused.Status == 429, refused.ToString());
        Assert.Equal("1", refused.Header("Retry-After"));
        Assert.StartsWith("application/json", refused.Header("Content-Type"));
        Assert.Equal("queue_full", JsonNode.Parse(refused.BodyText)!["error"]!["code"]!.GetValue<string>());
        Assert.Equal(2, backend.InFlight);

        backend.Release();
        var answers = await Task.WhenAll(held.Concat(queued));
        Assert.All(answers, r => Assert.True(r.Status == 200, r.ToString()));
        Assert.Equal(2, backend.PeakInFlight);
        var queue = await QueueAsync(gateway);
        Assert.Equal(0, queue["waiting"]!.GetValue<int>());
        Assert.Equal(2, queue["admitted"]!.GetValue<long>());
        Assert.Equal(1, queue["rejected"]!.GetValue<long>());
        await AssertBackendBlamelessAsync(gateway);
        using var scrape = new HttpRequestMessage(HttpMethod.Get, gateway.BaseUrl + "/metrics");
        scrape.Headers.Add("X-API-Key", Key);
        using var scraped = await gateway.Client.SendAsync(scrape);
        var metrics = await scraped.Content.ReadAsStringAsync();
        Assert.Contains("edgeproxy_queue_rejected_total{service=\"svc\",model=\"m\"} 1", metrics);
    }

    /// <summary>The wait that runs out: 429 queue_timeout after queue_timeout, three times in a row, and the busy backend is neither ejected nor charged an error.</summary>
    [Theory]
    [MemberData(nameof(Limits))]
    [Trait(Matrix.Trait, Matrix.Variants)]
    public async Task A_wait_that_runs_out_is_answered_429_and_never_blamed_on_the_backend(string variant, string limit)
    {
        using var backend = new HoldingBackend();
        await using var gateway = await StartAsync(variant, backend, maxConcurrency: limit == "max_concurrency" ? 1 : null, maxQueue: 8, queueTimeout: 0.3,
            maxConnections: limit == "MAX_CONNECTIONS" ? 1 : null);

        var held = SendAsync(gateway, "held");
        await Poll.UntilAsync(() => backend.InFlight == 1, Deadline, "the backend holding one request");
        for (var i = 0; i < 3; i++)
        {
            var watch = Stopwatch.StartNew();
            var late = await SendAsync(gateway, $"late-{i}");
            Assert.True(late.Status == 429, late.ToString());
            Assert.Equal("1", late.Header("Retry-After"));
            Assert.Equal("queue_timeout", JsonNode.Parse(late.BodyText)!["error"]!["code"]!.GetValue<string>());
            Assert.True(watch.Elapsed >= TimeSpan.FromSeconds(0.25), $"answered after {watch.Elapsed.TotalMilliseconds:0} ms, before queue_timeout");
        }
        Assert.Equal(1, backend.InFlight);
        await AssertBackendBlamelessAsync(gateway);

        backend.Release();
        var answer = await held;
        Assert.True(answer.Status == 200, answer.ToString());
        Assert.Equal(1, backend.PeakInFlight);
    }

    public static TheoryData<string, string> Limits => GatewayVariant.With("max_concurrency", "MAX_CONNECTIONS");

    [Theory]
    [MemberData(nameof(GatewayVariant.All), MemberType = typeof(GatewayVariant))]
    [Trait(Matrix.Trait, Matrix.Variants)]
    public async Task A_client_that_leaves_the_line_gives_up_its_place(string variant)
    {
        using var backend = new HoldingBackend();
        await using var gateway = await StartAsync(variant, backend, maxConcurrency: 1, maxQueue: 1, queueTimeout: 30);

        var held = SendAsync(gateway, "held");
        await Poll.UntilAsync(() => backend.InFlight == 1, Deadline, "the backend holding one request");
        await using (var leaving = await RawConnection.OpenAsync(gateway.Port))
        {
            await leaving.WriteAsync(Head("leaving"));
            await Poll.UntilAsync(async () => (await QueueAsync(gateway))["waiting"]!.GetValue<int>() == 1, Deadline, "the request in line");
        }
        await Poll.UntilAsync(async () => (await QueueAsync(gateway))["waiting"]!.GetValue<int>() == 0, Deadline, "the place given up");

        // The one place is free again: the next request waits instead of being refused.
        var next = SendAsync(gateway, "next");
        await Poll.UntilAsync(async () => (await QueueAsync(gateway))["waiting"]!.GetValue<int>() == 1, Deadline, "the next request in line");
        backend.Release();
        Assert.All(await Task.WhenAll(held, next), r => Assert.True(r.Status == 200, r.ToString()));
        Assert.Equal(2, backend.Served);
    }

    /// <summary>
    /// No max_concurrency: the gateway reads the engine's metrics while it is busy, and once the
    /// engine queues it sends it no more than it batches; later requests wait in the gateway's line
    /// (where any backend's free slot could take them) and are all answered.
    /// </summary>
    [Theory]
    [MemberData(nameof(GatewayVariant.All), MemberType = typeof(GatewayVariant))]
    [Trait(Matrix.Trait, Matrix.Variants)]
    public async Task An_engine_that_queues_is_sent_no_more_than_it_batches(string variant)
    {
        using var backend = new HoldingBackend { EngineSlots = 2 };
        await using var gateway = await StartAsync(variant, backend, maxConcurrency: null, maxQueue: 16, queueTimeout: 30);

        var first = Enumerable.Range(0, 5).Select(i => SendAsync(gateway, $"first-{i}")).ToArray();
        await Poll.UntilAsync(() => backend.InFlight == 5, Deadline, "five requests at the engine (nothing learnt yet)");
        await Poll.UntilAsync(async () => (await BackendAsync(gateway))["learned_concurrency"]?.GetValue<int>() == 2, Deadline, "the engine's batch of 2 learnt");
        await Poll.UntilAsync(() => gateway.Output.Lines.Any(l => l.Contains("engine batches 2 requests at once", StringComparison.Ordinal)), Deadline, "the log saying so");

        var later = Enumerable.Range(0, 3).Select(i => SendAsync(gateway, $"later-{i}")).ToArray();
        await Poll.UntilAsync(async () => (await QueueAsync(gateway))["waiting"]!.GetValue<int>() == 3, Deadline, "three later requests in the gateway's line");
        Assert.Equal(5, backend.InFlight);

        backend.Release();
        Assert.All(await Task.WhenAll(first.Concat(later)), r => Assert.True(r.Status == 200, r.ToString()));
        Assert.Equal(8, backend.Served);
        Assert.True(backend.MetricsReads > 0);
        await AssertBackendBlamelessAsync(gateway);
    }

    private static async Task<JsonNode> BackendAsync(GatewayProcess gateway)
        => JsonNode.Parse(await gateway.Client.GetStringAsync(gateway.BaseUrl + "/api/health/status"))!["data"]!["svc"]!["m"]![0]!;

    private static async Task<GatewayProcess> StartAsync(string variant, HoldingBackend backend, int? maxConcurrency, int maxQueue, double queueTimeout, int? maxConnections = null)
    {
        var json = JsonNode.Parse(BackendsJson.For("svc", "m", ("busy", backend.Url, 1)))!;
        var model = json["services"]!["svc"]!["models"]!["m"]!;
        model["max_queue"] = maxQueue;
        model["queue_timeout"] = queueTimeout;
        if (maxConcurrency is int limit)
        {
            model["backends"]![0]!["max_concurrency"] = limit;
        }
        var environment = new Dictionary<string, string> { ["BACKEND_API_KEY"] = Key, ["HEALTH_CHECK_INTERVAL"] = "3600" };
        if (maxConnections is int connections)
        {
            environment["MAX_CONNECTIONS"] = connections.ToString();
        }
        return await GatewayProcess.StartAsync(json.ToJsonString(), GatewayVariant.Parse(variant).Apply(environment));
    }

    private static string Head(string name) => $"GET /svc/m/v1/{name} HTTP/1.1\nHost: gw\nAuthorization: Bearer {Key}\nConnection: close";

    private static Task<RawResponse> SendAsync(GatewayProcess gateway, string name)
        => RawHttp.SendAsync(gateway.Port, Head(name), timeout: TimeSpan.FromSeconds(30));

    private static async Task<JsonNode> QueueAsync(GatewayProcess gateway)
        => JsonNode.Parse(await gateway.Client.GetStringAsync(gateway.BaseUrl + "/api/health/status"))!["queues"]!["svc"]!["m"]!;

    /// <summary>Queue time is nobody's failure: the backend is not ejected and has no error.</summary>
    private static async Task AssertBackendBlamelessAsync(GatewayProcess gateway)
    {
        var status = JsonNode.Parse(await gateway.Client.GetStringAsync(gateway.BaseUrl + "/api/health/status"))!;
        var backend = status["data"]!["svc"]!["m"]![0]!;
        Assert.False(backend["ejected"]!.GetValue<bool>(), backend.ToJsonString());
        Assert.Equal(0, backend["errors"]!.GetValue<long>());
    }
}
