using System.Net;
using System.Net.Sockets;
using EdgeProxy.Transport;

namespace EdgeProxy.Forwarding;

/// <summary>
/// The socket under a <see cref="Http1Connection"/>: the runtime's <see cref="Socket"/>, or, with
/// TRANSPORT=epoll, a socket on the gateway's own loops so a fast-path request and its upstream
/// exchange share one thread. Errors surface as <see cref="SocketException"/> either way.
/// </summary>
internal abstract class UpstreamSocket : IDisposable
{
    /// <summary>Bytes received, 0 at the end of the stream; an empty buffer waits until data (or the end) is there.</summary>
    public abstract ValueTask<int> ReceiveAsync(Memory<byte> buffer, CancellationToken cancellationToken);

    /// <summary>Sends part of <paramref name="data"/>; returns how much went.</summary>
    public abstract ValueTask<int> SendAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken);

    /// <summary>An idle keep-alive connection is readable only when the backend closed it (or sent garbage).</summary>
    public abstract bool LooksAlive();

    /// <summary>
    /// <see cref="LooksAlive"/> as far as the socket's readiness is known without asking the kernel
    /// (the epoll socket asks only after an edge since its last drain). It can miss bytes that just
    /// arrived, so it only answers early: the connection is checked with <see cref="LooksAlive"/> again before reuse.
    /// </summary>
    public virtual bool SeemsAlive() => LooksAlive();

    /// <summary>
    /// While the connection idles in its pool: calls <paramref name="onReadable"/> (at most once, on
    /// any thread) when bytes, a FIN or an error arrive. It may also be called after the connection
    /// was taken again, when the next response arrives; the callee tells the two apart.
    /// </summary>
    public abstract void WatchIdle(Action<object?> onReadable, object state);

    /// <summary>Stops the idle watch where the socket can (the epoll socket); elsewhere the callee ignores a late call.</summary>
    public virtual void UnwatchIdle()
    {
    }

    public abstract void Dispose();
}

/// <summary>The runtime's socket (TRANSPORT=sockets).</summary>
internal sealed class RuntimeUpstreamSocket(Socket socket) : UpstreamSocket
{
    private SocketAsyncEventArgs? _idleWatch;
    private int _watching;
    public override ValueTask<int> ReceiveAsync(Memory<byte> buffer, CancellationToken cancellationToken)
        => socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken);

    public override ValueTask<int> SendAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
        => socket.SendAsync(data, SocketFlags.None, cancellationToken);

    public override bool LooksAlive()
    {
        try
        {
            return !socket.Poll(0, SelectMode.SelectRead) && socket.Connected;
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            return false;
        }
    }

    /// <summary>
    /// A zero-byte receive, which completes when the socket turns readable without taking a byte
    /// (one reusable event-args per connection; at most one pending). It stays queued ahead of the
    /// next exchange's receives and completes with them, which the callback ignores.
    /// </summary>
    public override void WatchIdle(Action<object?> onReadable, object state)
    {
        if (Interlocked.Exchange(ref _watching, 1) != 0)
        {
            return;   // the last watch has not fired yet: it covers this idle period too
        }
        var args = _idleWatch;
        if (args is null)
        {
            args = _idleWatch = new SocketAsyncEventArgs();
            args.SetBuffer(Memory<byte>.Empty);
            args.Completed += static (_, e) => ((RuntimeUpstreamSocket)e.UserToken!).IdleWatchFired();
            args.UserToken = this;
        }
        _onIdleReadable = onReadable;
        _idleState = state;
        try
        {
            if (!socket.ReceiveAsync(args))
            {
                IdleWatchFired();
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException or InvalidOperationException)
        {
            IdleWatchFired();
        }
    }

    private Action<object?>? _onIdleReadable;
    private object? _idleState;

    private void IdleWatchFired()
    {
        var callback = _onIdleReadable;
        var state = _idleState;
        Volatile.Write(ref _watching, 0);
        callback?.Invoke(state);
    }

    public override void Dispose()
    {
        socket.Dispose();
        _idleWatch?.Dispose();
    }
}

/// <summary>An upstream socket on an <see cref="EpollLoop"/>: tried at once, parked on EAGAIN, resumed by the loop.</summary>
internal sealed class EpollUpstreamSocket : UpstreamSocket
{
    private readonly EpollSocket _socket;

    private EpollUpstreamSocket(EpollSocket socket) => _socket = socket;

    /// <summary>
    /// Connects within <paramref name="timeout"/> to the first address of <paramref name="endPoint"/> that
    /// answers (the runtime's DnsEndPoint connect tries them in order too), Nagle off.
    /// </summary>
    public static async ValueTask<EpollUpstreamSocket> ConnectAsync(EpollLoops loops, DnsEndPoint endPoint, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var timeoutSource = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeoutSource.CancelAfter(timeout);
        try
        {
            var addresses = IPAddress.TryParse(endPoint.Host, out var literal)
                ? [literal]
                : await Dns.GetHostAddressesAsync(endPoint.Host, timeoutSource.Token).ConfigureAwait(false);
            SocketException? last = null;
            foreach (var address in addresses)
            {
                if (address.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6))
                {
                    continue;
                }
                var socket = Open(loops.Pick(), new IPEndPoint(address, endPoint.Port), out var error);
                if (error == Libc.EINPROGRESS)
                {
                    try
                    {
                        await socket!.WaitWritableAsync(timeoutSource.Token).ConfigureAwait(false);
                    }
                    catch
                    {
                        socket!.Dispose();
                        throw;
                    }
                    error = socket.PendingError();
                }
                if (error == 0)
                {
                    return new EpollUpstreamSocket(socket!);
                }
                socket?.Dispose();
                last = Libc.SocketError(error);
            }
            throw last ?? new SocketException((int)SocketError.HostNotFound);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new UpstreamConnectTimeoutException(endPoint, timeout);
        }
    }

    /// <summary>A non-blocking socket on <paramref name="loop"/> with its connect started; <paramref name="error"/> is 0, EINPROGRESS or the failure.</summary>
    private static unsafe EpollSocket? Open(EpollLoop loop, IPEndPoint target, out int error)
    {
        var family = target.AddressFamily == AddressFamily.InterNetwork ? Libc.AF_INET : Libc.AF_INET6;
        var fd = Libc.socket(family, Libc.SOCK_STREAM | Libc.SOCK_NONBLOCK | Libc.SOCK_CLOEXEC, 0);
        if (fd < 0)
        {
            error = Libc.Errno;
            return null;
        }
        var one = 1;
        Libc.setsockopt(fd, Libc.IPPROTO_TCP, Libc.TCP_NODELAY, &one, sizeof(int));
        Libc.SockAddr address;
        var length = Libc.FromEndPoint(target, &address);
        error = Libc.connect(fd, &address, length) == 0 ? 0 : Libc.Errno;
        if (error is not (0 or Libc.EINPROGRESS))
        {
            Libc.close(fd);
            return null;
        }
        try
        {
            return new EpollSocket(loop, fd, connecting: error == Libc.EINPROGRESS);
        }
        catch
        {
            Libc.close(fd);
            throw;
        }
    }

    public override ValueTask<int> ReceiveAsync(Memory<byte> buffer, CancellationToken cancellationToken)
    {
        if (buffer.IsEmpty)
        {
            // A zero-byte read: wait without a buffer until a peek finds data, the end or an error.
            return _socket.TryPeek() ? new ValueTask<int>(0) : (_peek ??= new PendingPeek(_socket)).RunAsync(cancellationToken);
        }
        var n = _socket.TryReceive(buffer.Span);
        if (n >= 0)
        {
            return new ValueTask<int>(n);
        }
        var receive = _receive ??= new PendingTransfer(_socket, send: false);
        receive.Buffer = buffer;
        return receive.RunAsync(cancellationToken);
    }

    public override ValueTask<int> SendAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        var n = _socket.TrySend(data.Span);
        if (n >= 0)
        {
            return new ValueTask<int>(n);
        }
        var send = _send ??= new PendingTransfer(_socket, send: true);
        send.Buffer = System.Runtime.InteropServices.MemoryMarshal.AsMemory(data);   // only read from
        return send.RunAsync(cancellationToken);
    }

    private PendingTransfer? _receive;
    private PendingTransfer? _send;
    private PendingPeek? _peek;

    /// <summary>A receive into, or a send from, <see cref="Buffer"/>, retried on each edge of its direction.</summary>
    private sealed class PendingTransfer(EpollSocket socket, bool send) : ReadinessOperation<int>
    {
        public Memory<byte> Buffer;

        protected override ValueTask WaitAsync(CancellationToken cancellationToken)
            => send ? socket.WaitWritableAsync(cancellationToken) : socket.WaitReadableAsync(cancellationToken);

        protected override bool TryComplete(out int result)
        {
            result = send ? socket.TrySend(Buffer.Span) : socket.TryReceive(Buffer.Span);
            if (result < 0)
            {
                return false;
            }
            Buffer = default;
            return true;
        }
    }

    private sealed class PendingPeek(EpollSocket socket) : ReadinessOperation<int>
    {
        protected override ValueTask WaitAsync(CancellationToken cancellationToken) => socket.WaitReadableAsync(cancellationToken);

        protected override bool TryComplete(out int result)
        {
            result = 0;
            return socket.TryPeek();
        }
    }

    // Not the readiness memory: bytes the loop has not seen yet count.
    public override bool LooksAlive() => Alive(askKernel: true);

    public override bool SeemsAlive() => Alive(askKernel: false);

    private bool Alive(bool askKernel)
    {
        if (_socket.PeerShutdown || _socket.IsClosed)
        {
            return false;
        }
        try
        {
            return !(askKernel ? _socket.PeekKernel() : _socket.TryPeek());
        }
        catch (SocketException)
        {
            return false;
        }
    }

    public override void UnwatchIdle() => _socket.WatchReadable(null);

    public override void WatchIdle(Action<object?> onReadable, object state)
    {
        _watch ??= new ReadableWatch();
        _watch.Callback = onReadable;
        _watch.State = state;
        _socket.WatchReadable(_watch);
    }

    private ReadableWatch? _watch;

    private sealed class ReadableWatch : IReadableWatcher
    {
        public Action<object?>? Callback;
        public object? State;

        public void OnReadable() => Callback?.Invoke(State);
    }

    public override void Dispose() => _socket.Dispose();
}
