using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using EdgeProxy.Transport;

namespace EdgeProxy.Forwarding;

/// <summary>
/// Keep-alive HTTP/1.1 connections to one backend (host:port). At most MAX_CONNECTIONS are in use
/// at once (further requests wait, as with SocketsHttpHandler's MaxConnectionsPerServer) and at most
/// MAX_KEEPALIVE_CONNECTIONS idle ones are kept up to <see cref="IdleTimeout"/>; the
/// surplus of a burst is closed after <see cref="SurplusIdleTimeout"/>.
/// </summary>
internal sealed class Http1ConnectionPool : IDisposable
{
    private readonly DnsEndPoint _endPoint;
    private readonly SemaphoreSlim _slots;
    private readonly Stack<Http1Connection> _idle = new();
    private readonly int _maxIdle;
    private readonly TimeSpan _connectTimeout;
    private readonly Timer _sweeper;
    private bool _disposed;

    /// <summary>With TRANSPORT=epoll (the fast path's pools): new connections open on the gateway's event loops.</summary>
    private readonly Transport.EpollLoops? _loops;

    /// <summary>Idle keep-alive connections older than this are closed (SocketsHttpHandler uses 60 s too).</summary>
    internal static readonly TimeSpan IdleTimeout = TimeSpan.FromSeconds(60);

    /// <param name="slots">The backend's MAX_CONNECTIONS budget, shared with the general path (<see cref="ConnectionBudgets"/>).</param>
    public Http1ConnectionPool(string host, int port, SemaphoreSlim slots, int maxIdle, TimeSpan connectTimeout, Transport.EpollLoops? loops = null)
    {
        _loops = loops;
        _endPoint = new DnsEndPoint(host, port);
        _slots = slots;
        _maxIdle = maxIdle;
        _connectTimeout = connectTimeout;
        _sweeper = new Timer(static s => ((Http1ConnectionPool)s!).Sweep(), this, SurplusIdleTimeout, SurplusIdleTimeout);
    }

    /// <summary>
    /// Idle connections beyond MAX_KEEPALIVE_CONNECTIONS are closed after this long idle rather than
    /// at once: closing them on return makes a burst wider than the budget reconnect on every request
    /// (measured: thousands of TIME_WAIT sockets and 2x CPU at 64 concurrent requests with the default 20).
    /// The same 1 s the SocketsHttpHandler configuration used for MAX_KEEPALIVE_CONNECTIONS = 0.
    /// </summary>
    private static readonly TimeSpan SurplusIdleTimeout = TimeSpan.FromSeconds(1);

    /// <summary>
    /// A connection for one raw exchange (the HTTP/1.1 fast path writes and reads it itself): an
    /// idle one when there is one, else a new one. It holds a slot until
    /// <see cref="Http1Connection.Release"/> or <see cref="Http1Connection.Abandon"/>.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<Http1Connection> RentAsync(bool fresh, CancellationToken cancellationToken)
    {
        await ConnectionBudgets.TakeAsync(_slots, cancellationToken).ConfigureAwait(false);
        try
        {
            return (fresh ? null : TakeIdle())
                ?? new Http1Connection(this, await ConnectAsync(_endPoint, _connectTimeout, _loops, cancellationToken).ConfigureAwait(false));
        }
        catch
        {
            _slots.Release();
            throw;
        }
    }

    /// <summary>
    /// The most recently used idle connection that is still clean: not closed by its idle watch,
    /// not expired, and with nothing to read (a byte that arrived just before it was taken, before
    /// the watch could run, is caught here).
    /// </summary>
    private Http1Connection? TakeIdle()
    {
        while (true)
        {
            Http1Connection? connection;
            lock (_idle)
            {
                if (!_idle.TryPop(out connection))
                {
                    return null;
                }
            }
            if (!connection.TryTakeIdle())
            {
                continue;   // the idle watch closed it
            }
            if (Environment.TickCount64 - connection.IdleSince > (long)IdleTimeout.TotalMilliseconds
                || !connection.LooksAlive())
            {
                connection.Dispose();
                continue;
            }
            return connection;
        }
    }

    /// <summary>The response ended cleanly and the connection may carry another request.</summary>
    public void Return(Http1Connection connection)
    {
        connection.IdleSince = Environment.TickCount64;
        var kept = false;
        lock (_idle)
        {
            if (!_disposed)
            {
                connection.ParkIdle();
                _idle.Push(connection);
                kept = true;
            }
        }
        if (!kept)
        {
            connection.Dispose();
        }
        _slots.Release();
    }

    /// <summary>The exchange failed or was abandoned mid-way: the connection's state is unknown, close it.</summary>
    public void Discard(Http1Connection connection)
    {
        connection.Dispose();
        _slots.Release();
    }

    private void Sweep()
    {
        var now = Environment.TickCount64;
        List<Http1Connection>? expired = null;
        lock (_idle)
        {
            if (_idle.Count == 0)
            {
                return;
            }
            var keep = new List<Http1Connection>(_idle.Count);
            var rank = 0;
            foreach (var connection in _idle)
            {
                // The stack enumerates most recently used first: the first MAX_KEEPALIVE_CONNECTIONS
                // live up to the idle timeout, the surplus only briefly.
                if (connection.IsClosed)
                {
                    continue;   // closed by its idle watch: just drop it
                }
                var limit = rank++ < _maxIdle ? IdleTimeout : SurplusIdleTimeout;
                if (now - connection.IdleSince > (long)limit.TotalMilliseconds)
                {
                    (expired ??= []).Add(connection);
                }
                else
                {
                    keep.Add(connection);
                }
            }
            if (expired is null && keep.Count == _idle.Count)
            {
                return;
            }
            _idle.Clear();
            for (var i = keep.Count - 1; i >= 0; i--)
            {
                _idle.Push(keep[i]);
            }
        }
        foreach (var connection in expired ?? [])
        {
            connection.Dispose();
        }
    }

    public void Dispose()
    {
        _sweeper.Dispose();
        lock (_idle)
        {
            _disposed = true;
            while (_idle.TryPop(out var connection))
            {
                connection.Dispose();
            }
        }
    }

    /// <summary>The connect (timeout, Nagle off), with failures as the ConnectionError SocketsHttpHandler would raise.</summary>
    private static async ValueTask<UpstreamSocket> ConnectAsync(DnsEndPoint endPoint, TimeSpan timeout, Transport.EpollLoops? loops, CancellationToken cancellationToken)
    {
        try
        {
            return loops is null
                ? new RuntimeUpstreamSocket(await UpstreamClientFactory.ConnectSocketAsync(endPoint, timeout, cancellationToken).ConfigureAwait(false))
                : await EpollUpstreamSocket.ConnectAsync(loops, endPoint, timeout, cancellationToken).ConfigureAwait(false);
        }
        catch (UpstreamConnectTimeoutException ex)
        {
            throw new HttpRequestException(HttpRequestError.ConnectionError, $"Connecting to {endPoint.Host}:{endPoint.Port} timed out.", ex);
        }
        catch (SocketException ex)
        {
            throw new HttpRequestException(HttpRequestError.ConnectionError, $"{ex.Message} ({endPoint.Host}:{endPoint.Port})", ex);
        }
    }
}
