using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;

namespace EdgeProxy.Transport;

/// <summary>
/// Kestrel's transport on the gateway's own epoll loops (TRANSPORT=epoll, Linux): accepted
/// connections get a <see cref="SocketPipeReader"/>/<see cref="SocketPipeWriter"/> pair that reads and
/// sends on demand, and the fast path's upstream sockets run on the same loops
/// (<see cref="Forwarding.LeanConnectionPool"/>), so a proxied request is served start to end on
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
        // The listening socket is set up by the runtime (dual mode, SO_REUSEADDR, errors as Kestrel
        // words them); from then on only this transport touches its descriptor.
        var socket = new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        if (ip.Address.Equals(IPAddress.IPv6Any))
        {
            socket.DualMode = true;
        }
        try
        {
            socket.Bind(ip);
        }
        catch (SocketException ex) when (ex.SocketErrorCode == SocketError.AddressAlreadyInUse)
        {
            socket.Dispose();
            throw new AddressInUseException(ex.Message, ex);
        }
        socket.Listen(Backlog);
        socket.Blocking = false;
        return new ValueTask<IConnectionListener>(new EpollConnectionListener(loops, socket));
    }
}

/// <summary>One listening socket: accepts on its loop, hands each connection to the next loop in turn.</summary>
internal sealed class EpollConnectionListener : IConnectionListener
{
    private readonly EpollLoops _loops;
    private readonly Socket _listenSocket;
    private readonly EpollSocket _socket;
    private volatile bool _unbound;

    public EpollConnectionListener(EpollLoops loops, Socket listenSocket)
    {
        _loops = loops;
        _listenSocket = listenSocket;
        EndPoint = listenSocket.LocalEndPoint!;
        // A duplicate descriptor for the loop: the runtime's Socket keeps (and at the end closes) its own.
        var fd = (int)listenSocket.Handle;
        _socket = new EpollSocket(loops.Next(), Dup(fd));
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
            var fd = Libc.accept4(_socket.Fd, &address, &length, Libc.SOCK_NONBLOCK | Libc.SOCK_CLOEXEC);
            if (fd >= 0)
            {
                var one = 1;
                Libc.setsockopt(fd, Libc.IPPROTO_TCP, Libc.TCP_NODELAY, &one, sizeof(int));   // Kestrel's NoDelay default
                remote = Libc.ToEndPoint(&address);
                return fd;
            }
            var errno = Libc.LastError;
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

    public ValueTask UnbindAsync(CancellationToken cancellationToken = default)
    {
        _unbound = true;
        _socket.WakeReader();
        return ValueTask.CompletedTask;
    }

    public ValueTask DisposeAsync()
    {
        _unbound = true;
        _socket.Dispose();
        _listenSocket.Dispose();
        return ValueTask.CompletedTask;
    }

    private static int Dup(int fd)
    {
        var copy = Fcntl(fd);
        if (copy < 0)
        {
            throw Libc.SocketError(Libc.Errno);
        }
        return copy;
    }

    /// <summary>fcntl(F_DUPFD_CLOEXEC).</summary>
    private static int Fcntl(int fd) => Libc.fcntl(fd, 1030, 0);
}
