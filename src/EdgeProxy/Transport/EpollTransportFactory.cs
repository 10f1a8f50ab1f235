using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;

namespace EdgeProxy.Transport;

/// <summary>
/// Kestrel's transport on the gateway's own epoll loops (TRANSPORT=epoll, Linux): accepted
/// connections get a <see cref="SocketPipeReader"/>/<see cref="SocketPipeWriter"/> pair that reads and
/// sends on demand, and the fast path's upstream sockets run on the same loops
/// (<see cref="Forwarding.Http1ConnectionPool"/>), so a proxied request is served start to end on
/// one thread with no runtime socket engine, no pipe and no thread hop in between.
/// bench/README.md ("fifth pass") has the measurements behind it.
/// </summary>
internal sealed class EpollTransportFactory(EpollLoops loops) : IConnectionListenerFactory, IConnectionListenerFactorySelector
{
    /// <summary>Kestrel's socket transport's default backlog (SocketTransportOptions.Backlog).</summary>
    private const int Backlog = 512;

    public bool CanBind(EndPoint endpoint) => endpoint is IPEndPoint;

    public ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
    {
        if (endpoint is not IPEndPoint ip)
        {
            throw new NotSupportedException($"The epoll transport binds IP endpoints only, not {endpoint.GetType().Name}.");
        }
        var fd = Listen(ip);
        return new ValueTask<IConnectionListener>(new EpollConnectionListener(loops, fd));
    }

    /// <summary>
    /// A listening socket set up as the runtime's Socket.Bind/Listen would (SO_REUSEADDR as the runtime
    /// sets it for TCP on Unix, dual mode for [::], Kestrel's backlog), straight through libc: the
    /// runtime's Socket class started its own socket engine threads on first use, ~1 ms of the start
    /// on this box for a transport that never uses them.
    /// </summary>
    private static unsafe int Listen(IPEndPoint ip)
    {
        var ipv6 = ip.AddressFamily == AddressFamily.InterNetworkV6;
        var fd = Libc.socket(ipv6 ? Libc.AF_INET6 : Libc.AF_INET, Libc.SOCK_STREAM | Libc.SOCK_NONBLOCK | Libc.SOCK_CLOEXEC, 0);
        if (fd < 0)
        {
            throw Libc.SocketError(Libc.Errno);
        }
        try
        {
            var one = 1;
            var zero = 0;
            Libc.setsockopt(fd, Libc.SOL_SOCKET, Libc.SO_REUSEADDR, &one, sizeof(int));
            if (ip.Address.Equals(IPAddress.IPv6Any))
            {
                Libc.setsockopt(fd, Libc.IPPROTO_IPV6, Libc.IPV6_V6ONLY, &zero, sizeof(int));
            }
            Libc.SockAddr address;
            var length = Libc.FromEndPoint(ip, &address);
            if (Libc.bind(fd, &address, length) != 0 || Libc.listen(fd, Backlog) != 0)
            {
                var error = Libc.SocketError(Libc.Errno);
                throw error.SocketErrorCode == SocketError.AddressAlreadyInUse ? new AddressInUseException(error.Message, error) : error;
            }
            return fd;
        }
        catch
        {
            Libc.close(fd);
            throw;
        }
    }
}

/// <summary>One listening socket: accepts on its loop, hands each connection to the next loop in turn.</summary>
internal sealed class EpollConnectionListener : IConnectionListener
{
    private readonly EpollLoops _loops;
    private readonly EpollSocket _socket;
    private volatile bool _unbound;

    public unsafe EpollConnectionListener(EpollLoops loops, int listeningFd)
    {
        _loops = loops;
        Libc.SockAddr address;
        var length = sizeof(Libc.SockAddr);
        if (Libc.getsockname(listeningFd, &address, &length) != 0)
        {
            var error = Libc.SocketError(Libc.Errno);
            Libc.close(listeningFd);
            throw error;
        }
        EndPoint = Libc.ToEndPoint(&address)!;   // the port the kernel chose for port 0
        _socket = new EpollSocket(loops.Next(), listeningFd);
    }

    public EndPoint EndPoint { get; }

    public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
    {
        while (!_unbound)
        {
            var accepted = TryAccept(out var remote);
            if (accepted >= 0)
            {
                return new EpollConnection(_loops.Next(), accepted, remote).Start();
            }
            if (accepted == -2)
            {
                // Out of descriptors or memory: Kestrel's accept loop would spin; back off briefly.
                await Task.Delay(10, cancellationToken).ConfigureAwait(false);
                continue;
            }
            try
            {
                await _socket.WaitReadableAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (SocketException) when (_unbound)
            {
                break;
            }
        }
        return null;
    }

    /// <summary>An accepted descriptor, -1 when none is waiting, -2 on a resource shortage.</summary>
    private unsafe int TryAccept(out EndPoint? remote)
    {
        remote = null;
        Libc.SockAddr address;
        while (true)
        {
            var seq = _socket.ReadSeq;
            var length = sizeof(Libc.SockAddr);
            var fd = _socket.Accept(&address, &length, out var errno);
            if (fd >= 0)
            {
                var one = 1;
                Libc.setsockopt(fd, Libc.IPPROTO_TCP, Libc.TCP_NODELAY, &one, sizeof(int));   // Kestrel's NoDelay default
                remote = Libc.ToEndPoint(&address);
                return fd;
            }
            switch (errno)
            {
                case Libc.EAGAIN:
                    // The queue is empty: the next connection raises an edge.
                    _socket.ReadDrained(seq);
                    return -1;
                case Libc.EINTR:
                case Libc.ECONNABORTED:
                    continue;
                case Libc.EMFILE:
                case Libc.ENFILE:
                case Libc.ENOBUFS:
                case Libc.ENOMEM:
                    return -2;
                default:
                    if (_unbound || _socket.IsClosed)
                    {
                        return -1;
                    }
                    throw Libc.SocketError(errno);
            }
        }
    }

    /// <summary>
    /// Kestrel's first step of a shutdown (then it drains the open connections, then disposes the
    /// listener): the listening socket closes now, as Kestrel's socket transport closes its own, so
    /// new clients are refused at once instead of waiting in the accept queue for the whole drain,
    /// and a replacement process can bind the port while this one drains. The parked accept wakes
    /// and returns null.
    /// </summary>
    public ValueTask UnbindAsync(CancellationToken cancellationToken = default)
    {
        _unbound = true;
        _socket.Dispose();
        return ValueTask.CompletedTask;
    }

    public ValueTask DisposeAsync()
    {
        _unbound = true;
        _socket.Dispose();
        return ValueTask.CompletedTask;
    }
}
