using System.Net.Sockets;
using System.Threading.Tasks.Sources;

namespace EdgeProxy.Transport;

/// <summary>Told when the peer half-closed, reset or errored the connection (from the loop thread).</summary>
internal interface IPeerClosedListener
{
    void OnPeerClosed();
}

/// <summary>Told, once, of the first read-side edge (data, FIN, reset or error) after <see cref="EpollSocket.WatchReadable"/> (from the loop thread).</summary>
internal interface IReadableWatcher
{
    void OnReadable();
}

/// <summary>
/// A non-blocking socket on an <see cref="EpollLoop"/>. Operations are tried at once and, when the
/// kernel has nothing (EAGAIN), parked until the loop sees the next readiness edge; the loop then
/// resumes them inline. Like nginx (<c>rev-&gt;ready</c> in ngx_unix_recv) it remembers when a read
/// came back short, i.e. drained the socket, and waits for the next edge instead of paying a
/// receive that can only fail with EAGAIN — unless the peer's FIN or an error is pending, which
/// raises no further edge. A close never frees the descriptor while a call on it is in flight
/// (the number could be reused by the next accept), so every call holds a reference.
/// </summary>
internal sealed unsafe class EpollSocket : IDisposable
{
    private const int ClosedFlag = 1 << 30;

    private readonly Readiness _read;
    private readonly Readiness _write;
    private int _refs = 1;
    private volatile bool _peerShutdown;
    private int _peerClosedSignalled;

    /// <param name="connecting">A connect is in progress: the first write wait lasts until its edge. (Register only after connect():
    /// a socket added to epoll before it connects polls as hung up.)</param>
    public EpollSocket(EpollLoop loop, int fd, IPeerClosedListener? listener = null, bool connecting = false)
    {
        Loop = loop;
        Fd = fd;
        Listener = listener;
        _read = new Readiness();
        _write = new Readiness();
        if (connecting)
        {
            _write.DrainedAt = 0;
        }
        loop.Register(this);
    }

    public EpollLoop Loop { get; }

    public int Fd { get; }

    internal int Slot { get; set; }

    internal uint Generation { get; set; }

    public IPeerClosedListener? Listener { get; }

    /// <summary>The peer sent FIN, reset the connection, or the socket errored.</summary>
    public bool PeerShutdown => _peerShutdown;

    public bool IsClosed => (Volatile.Read(ref _refs) & ClosedFlag) != 0;

    /// <summary>False when the last read found the socket empty and no edge came since: a receive now would only return EAGAIN.</summary>
    public bool MaybeReadable => Volatile.Read(ref _read.Seq) != _read.DrainedAt;

    /// <summary>From the loop thread: the events of one edge.</summary>
    internal void OnEvents(uint events)
    {
        var hangUp = (events & (Libc.EPOLLRDHUP | Libc.EPOLLHUP | Libc.EPOLLERR)) != 0;
        if (hangUp)
        {
            _peerShutdown = true;
        }
        var readSide = (events & (Libc.EPOLLIN | Libc.EPOLLRDHUP | Libc.EPOLLHUP | Libc.EPOLLERR)) != 0;
        // The watcher this edge is for was registered before it: one that the woken reader registers
        // while it runs (a connection going back to its pool after reading the response this edge
        // announced) waits for the next edge.
        var watcher = readSide && _readableWatcher is not null ? Interlocked.Exchange(ref _readableWatcher, null) : null;
        if (readSide)
        {
            _read.Signal();
        }
        if ((events & (Libc.EPOLLOUT | Libc.EPOLLHUP | Libc.EPOLLERR)) != 0)
        {
            _write.Signal();
        }
        if (hangUp && Interlocked.Exchange(ref _peerClosedSignalled, 1) == 0)
        {
            Listener?.OnPeerClosed();
        }
        watcher?.OnReadable();
    }

    private IReadableWatcher? _readableWatcher;

    /// <summary>
    /// Calls <paramref name="watcher"/> on the next read-side edge (null: stop watching). An idle
    /// pooled upstream connection is watched so that bytes or a close arriving while nobody reads
    /// it close it at once, as nginx's keepalive module does.
    /// </summary>
    public void WatchReadable(IReadableWatcher? watcher) => Volatile.Write(ref _readableWatcher, watcher);

    /// <summary>Bytes received (0: the peer's FIN), or -1 when nothing is there yet. Throws <see cref="SocketException"/> on a socket error.</summary>
    public int TryReceive(Span<byte> buffer)
    {
        var seq = Volatile.Read(ref _read.Seq);
        if (seq == _read.DrainedAt)
        {
            return -1;
        }
        int n;
        fixed (byte* p = buffer)
        {
            n = Transfer(_read, seq, p, buffer.Length, 0, send: false);
        }
        if (n > 0 && n < buffer.Length && !_peerShutdown)
        {
            _read.DrainedAt = seq;   // a short read emptied the queue: the next data raises an edge
        }
        return n;
    }

    /// <summary>True when a read would not wait: data, the peer's FIN or an error is there (MSG_PEEK, nothing consumed).</summary>
    public bool TryPeek()
    {
        var seq = Volatile.Read(ref _read.Seq);
        return seq != _read.DrainedAt && Peek(seq);
    }

    /// <summary>
    /// Whether bytes or a FIN wait in the kernel, asked with a syscall whatever the readiness memory
    /// says: an edge that arrived but that the loop thread has not processed yet (it is busy, or not
    /// scheduled) counts too. For decisions that must not be wrong, such as reusing a connection.
    /// </summary>
    public bool PeekKernel() => Peek(Volatile.Read(ref _read.Seq));

    private bool Peek(int seq)
    {
        byte one;
        return Transfer(_read, seq, &one, 1, Libc.MSG_PEEK, send: false) >= 0;
    }

    /// <summary>Bytes accepted by the kernel, or -1 when its send buffer is full. Throws <see cref="SocketException"/> on a socket error (EPIPE, ECONNRESET).</summary>
    public int TrySend(ReadOnlySpan<byte> data)
    {
        var seq = Volatile.Read(ref _write.Seq);
        if (seq == _write.DrainedAt)
        {
            return -1;
        }
        fixed (byte* p = data)
        {
            return Transfer(_write, seq, p, data.Length, Libc.MSG_NOSIGNAL, send: true);
        }
    }

    /// <summary>One recv or send (retried on EINTR): the byte count, or -1 on EAGAIN, which marks <paramref name="side"/> drained at <paramref name="seq"/>.</summary>
    private int Transfer(Readiness side, int seq, byte* buffer, int length, int flags, bool send)
    {
        Enter();
        try
        {
            while (true)
            {
                var n = send ? Libc.send(Fd, buffer, length, flags) : Libc.recv(Fd, buffer, length, flags);
                if (n >= 0)
                {
                    return (int)n;
                }
                var errno = Libc.LastError;   // read before anything else can overwrite it (Libc.LastError)
                if (errno == Libc.EAGAIN)
                {
                    side.DrainedAt = seq;
                    return -1;
                }
                if (errno != Libc.EINTR)
                {
                    throw Libc.SocketError(errno);
                }
            }
        }
        finally
        {
            Exit();
        }
    }

    /// <summary>
    /// accept4 on a listening socket, holding a reference like every other call, so a close from
    /// another thread (the listener's unbind) cannot free the descriptor mid-call: the accepted
    /// descriptor, or -1 with <paramref name="errno"/> (EBADF once the socket is closed).
    /// </summary>
    public int Accept(Libc.SockAddr* address, int* length, out int errno)
    {
        if (!TryEnter())
        {
            errno = Libc.EBADF;
            return -1;
        }
        try
        {
            var fd = Libc.accept4(Fd, address, length, Libc.SOCK_NONBLOCK | Libc.SOCK_CLOEXEC);
            errno = fd < 0 ? Libc.LastError : 0;   // read before Exit, whose close could overwrite it
            return fd;
        }
        finally
        {
            Exit();
        }
    }

    /// <summary>The read side's edge count, for operations other than receive (accept): pass it to <see cref="ReadDrained"/> after an EAGAIN.</summary>
    public int ReadSeq => Volatile.Read(ref _read.Seq);

    public void ReadDrained(int seq) => _read.DrainedAt = seq;

    /// <summary>Completes when the socket may be readable (the next edge, the peer's FIN or an error, or <see cref="WakeReader"/>).</summary>
    public ValueTask WaitReadableAsync(CancellationToken cancellationToken) => _read.WaitAsync(cancellationToken);

    /// <summary>Completes when the socket may take more bytes.</summary>
    public ValueTask WaitWritableAsync(CancellationToken cancellationToken) => _write.WaitAsync(cancellationToken);

    /// <summary>Resumes a parked read wait without readiness (a pending-read cancel, a close).</summary>
    public void WakeReader() => _read.Signal();

    public void WakeWriter() => _write.Signal();

    public void Shutdown(int how)
    {
        if (TryEnter())
        {
            Libc.shutdown(Fd, how);
            Exit();
        }
    }

    /// <summary>SO_ERROR: the result of a non-blocking connect.</summary>
    public int PendingError()
    {
        Enter();
        try
        {
            int error = 0, length = sizeof(int);
            return Libc.getsockopt(Fd, Libc.SOL_SOCKET, Libc.SO_ERROR, &error, &length) == 0 ? error : Libc.Errno;
        }
        finally
        {
            Exit();
        }
    }

    /// <summary>Leaves the loop, resumes parked operations (which then fail) and closes the descriptor once no call is in flight.</summary>
    public void Dispose()
    {
        if ((Interlocked.Or(ref _refs, ClosedFlag) & ClosedFlag) != 0)
        {
            return;
        }
        Loop.Unregister(this);
        _read.Signal();
        _write.Signal();
        Exit();
    }

    private bool TryEnter()
    {
        if ((Interlocked.Increment(ref _refs) & ClosedFlag) != 0)
        {
            Exit();
            return false;
        }
        return true;
    }

    private void Enter()
    {
        if (!TryEnter())
        {
            throw new SocketException((int)SocketError.OperationAborted);
        }
    }

    private void Exit()
    {
        if (Interlocked.Decrement(ref _refs) == ClosedFlag)
        {
            Libc.close(Fd);
        }
    }

    /// <summary>One direction's readiness: an edge counter, where the last operation drained it, and the parked waiter.</summary>
    private sealed class Readiness
    {
        /// <summary>Bumped by every edge (and every wake); compared with <see cref="DrainedAt"/>.</summary>
        public int Seq;

        /// <summary>The <see cref="Seq"/> at which an operation saw the socket empty (read) or full (write).</summary>
        public int DrainedAt = -1;

        private Waiter? _parked;
        private readonly Waiter _waiter;

        public Readiness() => _waiter = new Waiter(this);

        public void Signal()
        {
            Interlocked.Increment(ref Seq);
            // Dekker pair with WaitAsync: either the waiter sees the new Seq, or this sees the waiter.
            if (Volatile.Read(ref _parked) is not null)
            {
                Interlocked.Exchange(ref _parked, null)?.Complete();
            }
        }

        public ValueTask WaitAsync(CancellationToken cancellationToken)
        {
            var drained = DrainedAt;
            if (Volatile.Read(ref Seq) != drained)
            {
                return default;
            }
            if (cancellationToken.IsCancellationRequested)
            {
                return ValueTask.FromCanceled(cancellationToken);
            }
            var waiter = _waiter;
            waiter.Prepare(cancellationToken);
            Interlocked.Exchange(ref _parked, waiter);
            if ((Volatile.Read(ref Seq) != drained || cancellationToken.IsCancellationRequested)
                && Interlocked.CompareExchange(ref _parked, null, waiter) == waiter)
            {
                waiter.Unpark();
                return cancellationToken.IsCancellationRequested ? ValueTask.FromCanceled(cancellationToken) : default;
            }
            return new ValueTask(waiter, waiter.Version);
        }

        /// <summary>The cancellation callback's claim: true when it took the waiter before an edge did.</summary>
        public bool TryTake(Waiter waiter) => Interlocked.CompareExchange(ref _parked, null, waiter) == waiter;
    }

    /// <summary>The reusable awaitable of one direction (one wait at a time per direction).</summary>
    private sealed class Waiter(Readiness owner) : IValueTaskSource
    {
        private ManualResetValueTaskSourceCore<bool> _core;
        private CancellationToken _token;
        private CancellationTokenRegistration _registration;

        public short Version => _core.Version;

        public void Prepare(CancellationToken cancellationToken)
        {
            _core.Reset();
            _token = cancellationToken;
            _registration = cancellationToken.CanBeCanceled
                ? cancellationToken.UnsafeRegister(static s => ((Waiter)s!).OnCanceled(), this)
                : default;
        }

        /// <summary>Withdrawn before anyone awaited it.</summary>
        public void Unpark() => _registration.Unregister();

        public void Complete()
        {
            _registration.Unregister();
            _core.SetResult(true);
        }

        private void OnCanceled()
        {
            // A late callback of an earlier wait finds a token that is not cancelled, or loses the claim.
            var token = _token;
            if (token.IsCancellationRequested && owner.TryTake(this))
            {
                _core.SetException(new OperationCanceledException(token));
            }
        }

        public void GetResult(short token) => _core.GetResult(token);

        public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

        public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags)
            => _core.OnCompleted(continuation, state, token, flags);
    }
}
