using EdgeProxy.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace EdgeProxy.Health;

/// <summary>
/// Probes every backend with `GET {url}{health_path}` every HEALTH_CHECK_INTERVAL (±10% jitter so
/// many backends do not fire together); 2xx within HEALTH_CHECK_TIMEOUT passes. Checks never send
/// completions, so they spend zero tokens. One loop per backend; on reload, loops of unchanged
/// backends keep running (and keep their state), new ones start and removed ones stop. The set
/// comes from whoever owns the route table, which calls <see cref="Reconcile"/> after each reload.
/// </summary>
internal sealed partial class ActiveHealthChecker(
    Func<IEnumerable<BackendState>> backends,
    HttpMessageInvoker healthClient,
    GatewaySettings settings,
    TimeProvider time,
    HealthChangeSignal signal,
    ILogger<ActiveHealthChecker> logger) : IHostedLifecycleService, IDisposable
{
    private readonly Dictionary<BackendState, Probe> _probes = [];
    private readonly Lock _gate = new();
    private CancellationTokenSource? _stopping;

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Checks start once the server listens (their first probe waits 0–1 s anyway), not in front of it.</summary>
    public Task StartedAsync(CancellationToken cancellationToken)
    {
        _stopping = new CancellationTokenSource();
        Reconcile();
        LogStarted(logger, settings.HealthCheckInterval.TotalSeconds, settings.HealthCheckTimeout.TotalSeconds);
        return Task.CompletedTask;
    }

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        Task[] loops;
        lock (_gate)
        {
            _stopping?.Cancel();
            loops = _probes.Values.SelectMany(p => new[] { p.Loop, p.EngineLoop }).ToArray();
            _probes.Clear();
        }
        await Task.WhenAll(loops).WaitAsync(cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    /// <summary>Starts loops for new backends and stops those of removed ones (after a reload).</summary>
    public void Reconcile()
    {
        lock (_gate)
        {
            if (_stopping is null || _stopping.IsCancellationRequested)
            {
                return;
            }
            var live = new HashSet<BackendState>();
            foreach (var state in backends())
            {
                if (!live.Add(state) || _probes.ContainsKey(state))
                {
                    continue;
                }
                var probe = new Probe(state, CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token));
                state.StatusChanged += OnStatusChanged;
                probe.Loop = RunAsync(probe);
                probe.EngineLoop = WatchEngineAsync(state, probe.Cancellation.Token);
                _probes[state] = probe;
            }
            foreach (var (state, probe) in _probes.ToArray())
            {
                if (!live.Contains(state))
                {
                    state.StatusChanged -= OnStatusChanged;
                    probe.Cancellation.Cancel();
                    _probes.Remove(state);
                }
            }
        }
    }

    private void OnStatusChanged(BackendState state, HealthStatus old, HealthStatus now)
    {
        if (now == HealthStatus.Unhealthy)
        {
            LogUnhealthy(logger, state.Service, state.Model, state.Config.Id, state.ConsecutiveFailures);
        }
        else
        {
            LogStatusChange(logger, state.Service, state.Model, state.Config.Id, HealthStatusReport.Name(old), HealthStatusReport.Name(now));
        }
        signal.Notify();
    }

    private async Task RunAsync(Probe probe)
    {
        var token = probe.Cancellation.Token;
        try
        {
            // First check soon after start, spread over up to a second.
            await Task.Delay(TimeSpan.FromMilliseconds(Random.Shared.Next(0, (int)Math.Min(1000, settings.HealthCheckInterval.TotalMilliseconds / 2) + 1)), time, token).ConfigureAwait(false);
            while (!token.IsCancellationRequested)
            {
                await CheckOnceAsync(probe.State, token).ConfigureAwait(false);
                await Task.Delay(settings.HealthCheckInterval * (0.9 + Random.Shared.NextDouble() * 0.2), time, token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
        }
        finally
        {
            probe.Cancellation.Dispose();
        }
    }

    /// <summary>One probe of one backend (its current config: health path, key); records the verdict in its state.</summary>
    internal async Task CheckOnceAsync(BackendState state, CancellationToken stopping)
    {
        var started = time.GetTimestamp();
        bool passed;
        string detail;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stopping);
        timeout.CancelAfter(settings.HealthCheckTimeout);
        try
        {
            var config = state.Config;
            using var request = ProbeRequest(config, config.HealthPath);
            using var response = await healthClient.SendAsync(request, timeout.Token).ConfigureAwait(false);
            // Drain a bounded amount so the connection can be reused.
            var body = await response.Content.ReadAsStreamAsync(timeout.Token).ConfigureAwait(false);
            var buffer = new byte[4096];
            for (var total = 0; total < 65536;)
            {
                var read = await body.ReadAsync(buffer, timeout.Token).ConfigureAwait(false);
                if (read == 0)
                {
                    break;
                }
                total += read;
            }
            passed = (int)response.StatusCode is >= 200 and < 300;
            detail = "HTTP " + ((int)response.StatusCode).ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            throw;
        }
        catch (OperationCanceledException)
        {
            passed = false;
            detail = "timeout";
        }
        catch (Exception ex)
        {
            passed = false;
            detail = Describe(ex);
        }
        var elapsed = time.GetElapsedTime(started).TotalMilliseconds;
        if (!passed)
        {
            LogCheckFailed(logger, state.Service, state.Model, state.Config.Id, detail, elapsed);
        }
        state.ReportCheck(passed, Math.Round(elapsed, 2), detail);
    }

    /// <summary>The gateway's own GET of <paramref name="path"/> on a backend (a check or its metrics), with the backend's upstream key.</summary>
    private HttpRequestMessage ProbeRequest(BackendConfig config, string path)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, config.Url + path);
        request.Headers.TryAddWithoutValidation("User-Agent", "EdgeProxy-HealthCheck/1.0");
        if (UpstreamAuthModes.Header(config, settings) is (string name, var value))
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }
        return request;
    }

    /// <summary>How often a busy backend's engine metrics are read.</summary>
    internal static readonly TimeSpan EngineReadInterval = TimeSpan.FromMilliseconds(500);

    /// <summary>After an engine had no metrics to read (none published, an error), they are asked for again this much later.</summary>
    internal static readonly TimeSpan EngineRetryInterval = TimeSpan.FromSeconds(60);

    private const int EngineMetricsMaxBytes = 1 << 20;

    /// <summary>
    /// Reads the engine's batch (<see cref="EngineMetrics"/>) every <see cref="EngineReadInterval"/>
    /// while the backend holds two or more requests (an idle engine has nothing to teach) and tells
    /// the backend's state (<see cref="BackendState.ObserveEngine"/>). Not with <c>max_concurrency</c>
    /// set or <c>metrics_path</c> off.
    /// </summary>
    private async Task WatchEngineAsync(BackendState state, CancellationToken token)
    {
        var quietUntil = 0L;
        try
        {
            while (true)
            {
                await Task.Delay(EngineReadInterval, time, token).ConfigureAwait(false);
                if (state.Config is not { MaxConcurrency: null, MetricsPath: { } path } config || state.InFlight < 2 || time.GetTimestamp() < quietUntil)
                {
                    continue;
                }
                if (await ReadEngineAsync(config, path, token).ConfigureAwait(false) is var (running, waiting))
                {
                    var before = state.LearnedConcurrency;
                    state.ObserveEngine(running, waiting);
                    if (state.LearnedConcurrency is int learned && learned != before)
                    {
                        if (before is null)
                        {
                            LogEngineBatch(logger, state.Service, state.Model, config.Id, learned, running, waiting);
                        }
                        else
                        {
                            LogEngineBatchChanged(logger, state.Service, state.Model, config.Id, learned, running, waiting);
                        }
                    }
                }
                else
                {
                    quietUntil = time.GetTimestamp() + (long)(EngineRetryInterval.TotalSeconds * time.TimestampFrequency);
                }
            }
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
        }
    }

    /// <summary>The engine's (running, waiting) from `GET {url}{metrics_path}`; null when it has none to give.</summary>
    internal async Task<(int Running, int Waiting)?> ReadEngineAsync(BackendConfig config, string path, CancellationToken stopping)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stopping);
        timeout.CancelAfter(settings.HealthCheckTimeout);
        try
        {
            using var request = ProbeRequest(config, path);
            using var response = await healthClient.SendAsync(request, timeout.Token).ConfigureAwait(false);
            if ((int)response.StatusCode is < 200 or >= 300)
            {
                return null;
            }
            var body = await response.Content.ReadAsStreamAsync(timeout.Token).ConfigureAwait(false);
            var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(64 * 1024);
            try
            {
                var text = new System.Text.StringBuilder();
                for (var total = 0; total < EngineMetricsMaxBytes;)
                {
                    var read = await body.ReadAsync(buffer, timeout.Token).ConfigureAwait(false);
                    if (read == 0)
                    {
                        break;
                    }
                    text.Append(System.Text.Encoding.Latin1.GetString(buffer, 0, read));
                    total += read;
                }
                return EngineMetrics.Read(text.ToString());
            }
            finally
            {
                System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
            }
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            throw;
        }
        catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException or IOException)
        {
            return null;
        }
    }

    /// <summary>A short, address-free reason for the status page ("connection refused", "timeout").</summary>
    private static string Describe(Exception ex)
    {
        for (var inner = ex; inner is not null; inner = inner.InnerException)
        {
            if (inner is System.Net.Sockets.SocketException socket)
            {
                return socket.SocketErrorCode switch
                {
                    System.Net.Sockets.SocketError.ConnectionRefused => "connection refused",
                    System.Net.Sockets.SocketError.ConnectionReset => "connection reset",
                    System.Net.Sockets.SocketError.HostNotFound or System.Net.Sockets.SocketError.TryAgain => "host not found",
                    System.Net.Sockets.SocketError.HostUnreachable or System.Net.Sockets.SocketError.NetworkUnreachable => "unreachable",
                    _ => "socket error " + socket.SocketErrorCode,
                };
            }
            if (inner is Transport.UpstreamConnectTimeoutException)
            {
                return "connect timeout";
            }
        }
        return ex is HttpRequestException ? "connection failed" : ex.GetType().Name;
    }

    public void Dispose() => _stopping?.Dispose();

    private sealed record Probe(BackendState State, CancellationTokenSource Cancellation)
    {
        public Task Loop { get; set; } = Task.CompletedTask;

        public Task EngineLoop { get; set; } = Task.CompletedTask;
    }
}
