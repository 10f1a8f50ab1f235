using Microsoft.Extensions.Logging;

namespace EdgeProxy.Forwarding;

/// <summary>
/// The one record of a shutdown in progress, read by every path. From the signal on (SIGTERM or
/// SIGINT: the host's ApplicationStopping, <see cref="Begin"/>) the gateway is <see cref="Draining"/>:
/// `/ready` answers 503 and the dashboard feed ends, while Kestrel closes the listening sockets and
/// lets the requests in flight finish. SHUTDOWN_TIMEOUT later <see cref="Deadline"/> fires: each
/// forwarder ends what is still open with <see cref="ForwarderError.Shutdown"/> (a 503
/// before the response started, the stream's error frame after it), so no client is cut off by a
/// bare reset and the process exits 0. Kestrel's own shutdown timeout is longer by
/// <see cref="AbortAllowance"/>, so the forwarders, not Kestrel's abort, end those exchanges.
/// </summary>
internal sealed partial class ShutdownDrain : IDisposable
{
    /// <summary>
    /// What the host's shutdown timeout adds to SHUTDOWN_TIMEOUT: room for the error frames written at
    /// the deadline to leave (each waits a moment before its abortive close) before Kestrel aborts
    /// whatever connection is left, such as a client that stopped reading.
    /// </summary>
    public static readonly TimeSpan AbortAllowance = TimeSpan.FromSeconds(5);

    private readonly TimeSpan _timeout;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stopping = new();
    private readonly CancellationTokenSource _deadline;

    public ShutdownDrain(TimeSpan timeout, TimeProvider time, ILogger logger)
    {
        _timeout = timeout;
        _logger = logger;
        _deadline = new CancellationTokenSource(Timeout.InfiniteTimeSpan, time);
        _deadline.Token.UnsafeRegister(static s => ((ShutdownDrain)s!).OnDeadline(), this);
    }

    /// <summary>The host's shutdown timeout: SHUTDOWN_TIMEOUT plus <see cref="AbortAllowance"/>.</summary>
    public static TimeSpan HostTimeout(TimeSpan shutdownTimeout) => shutdownTimeout + AbortAllowance;

    /// <summary>True from the shutdown signal on.</summary>
    public bool Draining => _stopping.IsCancellationRequested;

    /// <summary>Cancelled at the shutdown signal: long-lived answers that are not proxied work (the dashboard feed) end here.</summary>
    public CancellationToken Stopping => _stopping.Token;

    /// <summary>Cancelled SHUTDOWN_TIMEOUT after the signal: proxied requests and streams still open end with the shutdown error.</summary>
    public CancellationToken Deadline => _deadline.Token;

    /// <summary>The shutdown signal (ApplicationStopping): draining from now on, the deadline armed.</summary>
    public void Begin()
    {
        if (_stopping.IsCancellationRequested)
        {
            return;
        }
        LogDraining(_logger, _timeout.TotalSeconds);
        _stopping.Cancel();
        _deadline.CancelAfter(_timeout);
    }

    private void OnDeadline() => LogDeadline(_logger, _timeout.TotalSeconds);

    public void Dispose()
    {
        _stopping.Dispose();
        _deadline.Dispose();
    }
}
