using System.Runtime.CompilerServices;

namespace EdgeProxy.Forwarding;

/// <summary>
/// One upstream HTTP/1.1 connection of the fast path: the request head (and body) go out as bytes,
/// the response head is found in the connection's buffer (and parsed by <see cref="Http1ResponseHead"/>),
/// the body is read by a <see cref="Http1ResponseBody"/>.
/// <para>
/// A connection goes back to its pool only when it is provably clean: the response was completely
/// framed, nothing beyond it was received (neither in the buffer nor waiting in the socket), and
/// the whole request body was sent before the response began (<see cref="MarkNotReusable"/>
/// otherwise). While it idles in the pool it is watched: any byte, FIN or error closes it at once
/// (nginx's keepalive module does the same), and it is checked again when taken. Bytes a backend
/// sends after a response — a body on a 204/304 or a HEAD answer, more than its Content-Length, an
/// answer to a request smuggled in a body — would otherwise be read as the next client's response.
/// </para>
/// </summary>
internal sealed class Http1Connection : IDisposable
{
    /// <summary>Response heads larger than this are refused (SocketsHttpHandler's default limit is also 64 KiB).</summary>
    private const int MaxHeadBytes = 64 * 1024;

    private const int InitialBufferSize = 4096;

    private readonly Http1ConnectionPool _pool;
    private readonly UpstreamSocket _socket;
    private byte[] _buffer = new byte[InitialBufferSize];
    private int _start;
    private int _end;
    private bool _reused;
    private bool _notReusable;
    private int _disposed;

    /// <summary><see cref="InUse"/>, <see cref="Idle"/> (in the pool, watched), <see cref="Checking"/> (the watch fired; looking) or <see cref="Closed"/>.</summary>
    private int _state;
    private const int InUse = 0;
    private const int Idle = 1;
    private const int Closed = 2;
    private const int Checking = 3;

    private static readonly Action<object?> OnIdleReadable = static s => ((Http1Connection)s!).CloseIfIdle();

    public Http1Connection(Http1ConnectionPool pool, UpstreamSocket socket)
    {
        _pool = pool;
        _socket = socket;
    }

    public long IdleSince { get; set; }

    internal UpstreamSocket Socket => _socket;

    /// <summary>Marks the start of an exchange; true when the connection already carried one (so it may be stale).</summary>
    internal bool BeginExchange()
    {
        _handedBack = 0;
        _notReusable = false;
        var reused = _reused;
        _reused = true;
        return reused;
    }

    /// <summary>
    /// True when a complete response head is buffered; <paramref name="scanned"/> carries how far
    /// earlier calls looked.
    /// </summary>
    internal bool TryFindHead(ref int scanned, out int length)
    {
        var window = _buffer.AsSpan(_start, _end - _start);
        var from = Math.Max(0, scanned - 3);
        var end = window.Length - from < 4 ? -1 : window[from..].IndexOf("\r\n\r\n"u8);   // the first look comes before any byte
        if (end >= 0)
        {
            length = from + end + 4;
            return true;
        }
        scanned = window.Length;
        if (window.Length >= MaxHeadBytes)
        {
            throw new HttpRequestException(HttpRequestError.ConfigurationLimitExceeded, "The upstream response head exceeds 64 KiB.");
        }
        length = 0;
        return false;
    }

    /// <summary>Receives into the buffer's free space (the socket's own reusable awaitable: no allocation); pass the count to <see cref="Received"/>.</summary>
    internal ValueTask<int> ReceiveAsync(CancellationToken cancellationToken)
    {
        MakeRoom();
        return _socket.ReceiveAsync(_buffer.AsMemory(_end), cancellationToken);
    }

    internal void Received(int count) => _end += count;

    internal int Buffered => _end - _start;

    /// <summary>An idle keep-alive connection is readable only when the backend closed it (or sent garbage).</summary>
    public bool LooksAlive() => _socket.LooksAlive();

    /// <summary>The response began before the whole request body was sent: the connection's state is unknown, close it at the end.</summary>
    internal void MarkNotReusable() => _notReusable = true;

    /// <summary>Into the pool: from now on any byte or close that arrives closes the connection (<see cref="CloseIfIdle"/>).</summary>
    internal void ParkIdle()
    {
        Volatile.Write(ref _state, Idle);
        _socket.WatchIdle(OnIdleReadable, this);
    }

    /// <summary>Out of the pool for an exchange; false when the idle watch closed it first.</summary>
    internal bool TryTakeIdle()
    {
        var spin = new SpinWait();
        while (true)
        {
            var state = Volatile.Read(ref _state);
            if (state == Idle && Interlocked.CompareExchange(ref _state, InUse, Idle) == Idle)
            {
                _socket.UnwatchIdle();   // the exchange's own response is not an idle connection's surprise
                return true;
            }
            if (state == Closed)
            {
                return false;
            }
            spin.SpinOnce();   // the watch is looking (one non-blocking peek)
        }
    }

    /// <summary>
    /// The idle watch fired: bytes nobody asked for, or the backend's close, and then the connection
    /// is closed. An edge can also be a late one for bytes the last exchange already read (edges are
    /// queued while the loop runs the exchange): a peek tells them apart, and a clean connection is
    /// watched again. Ignored once the connection is in use again.
    /// </summary>
    private void CloseIfIdle()
    {
        if (Interlocked.CompareExchange(ref _state, Checking, Idle) != Idle)
        {
            return;
        }
        if (_socket.LooksAlive())
        {
            Volatile.Write(ref _state, Idle);
            _socket.WatchIdle(OnIdleReadable, this);
            return;
        }
        Volatile.Write(ref _state, Closed);
        Dispose();
    }

    /// <summary>Closed by the idle watch (the pool skips and drops it).</summary>
    internal bool IsClosed => Volatile.Read(ref _state) == Closed;

    /// <summary>Moves unread bytes to the front; grows the buffer (up to the head limit) when it is full.</summary>
    private void MakeRoom()
    {
        if (_start > 0)
        {
            _buffer.AsSpan(_start, _end - _start).CopyTo(_buffer);
            _end -= _start;
            _start = 0;
        }
        if (_end == _buffer.Length)
        {
            Array.Resize(ref _buffer, Math.Min(_buffer.Length * 2, MaxHeadBytes + 8));
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    internal async ValueTask SendAllAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        while (!data.IsEmpty)
        {
            var sent = await _socket.SendAsync(data, cancellationToken).ConfigureAwait(false);
            data = data[sent..];
        }
    }

    /// <summary>Copies buffered (already received) bytes out; returns how many.</summary>
    internal int TakeBuffered(Span<byte> destination)
    {
        var n = Math.Min(destination.Length, _end - _start);
        _buffer.AsSpan(_start, n).CopyTo(destination);
        _start += n;
        return n;
    }

    internal ReadOnlySpan<byte> BufferedSpan => _buffer.AsSpan(_start, _end - _start);

    internal void Consume(int count) => _start += count;

    /// <summary>The body ended cleanly: back to the pool when the connection can carry another exchange.</summary>
    internal void Release(bool keepAlive)
    {
        if (Interlocked.Exchange(ref _handedBack, 1) != 0)
        {
            return;   // already back (each exchange frees its pool slot exactly once)
        }
        if (keepAlive && _start == _end && !_notReusable && _socket.SeemsAlive())
        {
            _start = _end = 0;
            _pool.Return(this);
        }
        else
        {
            // Bytes after the end of the response (buffered or waiting in the socket), a response
            // that began before the request body was sent, or the backend asked to close: never reuse.
            _pool.Discard(this);
        }
    }

    internal void Abandon()
    {
        if (Interlocked.Exchange(ref _handedBack, 1) == 0)
        {
            _pool.Discard(this);
        }
    }

    private int _handedBack;

    public void Dispose()
    {
        Volatile.Write(ref _state, Closed);
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _socket.Dispose();
        }
    }
}

internal enum Http1Framing
{
    Length,
    Chunked,
    UntilClose,
}
