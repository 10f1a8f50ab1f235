using System.IO.Pipelines;
using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;

namespace EdgeProxy.Transport;

/// <summary>
/// An accepted client connection on the epoll transport, as Kestrel sees it. Its lifecycle follows
/// Kestrel's socket transport (SocketConnection): <see cref="ConnectionClosed"/> fires when the peer
/// sends FIN or resets, when a send fails, or on <see cref="Abort"/>; the application completing its
/// output ends the connection (shutdown of both directions once the last bytes are out); the
/// descriptor is closed in <see cref="DisposeAsync"/>, after Kestrel is done with the connection.
/// </summary>
internal sealed class EpollConnection : ConnectionContext,
    IConnectionIdFeature, IConnectionTransportFeature, IConnectionItemsFeature, IConnectionLifetimeFeature, IConnectionEndPointFeature, IDuplexPipe,
    IPeerClosedListener
{
    /// <summary>How long a finished connection may take to hand its last bytes to a slow reader before it is reset.</summary>
    private static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(5);

    private static long _lastId;

    private readonly EpollSocket _socket;
    private readonly SocketPipeReader _input;
    private readonly SocketPipeWriter _output;
    private readonly CancellationTokenSource _closed = new();
    private readonly long _id;
    private string? _connectionId;
    private IDictionary<object, object?>? _items;
    private EndPoint? _localEndPoint;
    private int _closedSignalled;
    private int _finished;
    private bool _inputCompleted;
    private Task? _drain;
    private volatile ConnectionAbortedException? _abortReason;

    public EpollConnection(EpollLoop loop, int fd, EndPoint? remoteEndPoint)
    {
        _socket = new EpollSocket(loop, fd, this);
        _input = new SocketPipeReader(this, _socket);
        _output = new SocketPipeWriter(this, _socket);
        _id = Interlocked.Increment(ref _lastId);
        RemoteEndPoint = remoteEndPoint;
        ConnectionClosed = _closed.Token;
        var features = new FeatureCollection();
        features.Set<IConnectionIdFeature>(this);
        features.Set<IConnectionTransportFeature>(this);
        features.Set<IConnectionItemsFeature>(this);
        features.Set<IConnectionLifetimeFeature>(this);
        features.Set<IConnectionEndPointFeature>(this);
        Features = features;
    }

    /// <summary>Set by <see cref="Abort"/>: reads then fail with it, writes are dropped.</summary>
    internal ConnectionAbortedException? AbortReason => _abortReason;

    public override string ConnectionId
    {
        get => _connectionId ??= "E" + _id.ToString("X8", System.Globalization.CultureInfo.InvariantCulture);
        set => _connectionId = value;
    }

    public override IFeatureCollection Features { get; }

    public override IDictionary<object, object?> Items
    {
        get => _items ??= new Dictionary<object, object?>();
        set => _items = value;
    }

    public override IDuplexPipe Transport { get; set; }
        = null!;

    public PipeReader Input => _input;

    public PipeWriter Output => _output;

    public override CancellationToken ConnectionClosed { get; set; }

    public override EndPoint? RemoteEndPoint { get; set; }

    public override EndPoint? LocalEndPoint
    {
        get => _localEndPoint ??= LocalAddress();
        set => _localEndPoint = value;
    }

    /// <summary>Starts serving: the duplex pipe is this connection itself.</summary>
    internal EpollConnection Start()
    {
        Transport = this;
        return this;
    }

    /// <summary>What a failed receive or send surfaces as, as in Kestrel's socket transport: the abort reason, a reset as <see cref="ConnectionResetException"/>, the rest as <see cref="ConnectionAbortedException"/>.</summary>
    internal Exception Failure(System.Net.Sockets.SocketException ex) => _abortReason
        ?? (ex.SocketErrorCode is System.Net.Sockets.SocketError.ConnectionReset ? new ConnectionResetException(ex.Message, ex) : (Exception)new ConnectionAbortedException(ex.Message, ex));

    /// <summary>TLS on this connection once <see cref="StartTls"/> ran: the pipes then carry its plaintext.</summary>
    private TlsSession? _tls;

    /// <summary>
    /// Runs the TLS server handshake on the socket; from then on the connection's pipes read and
    /// write plaintext through the session, which the connection frees when it is disposed.
    /// </summary>
    internal async Task<TlsSessionInfo> StartTlsAsync(TlsContext context, CancellationToken cancellationToken)
    {
        var session = TlsSession.Create(context, _socket);
        try
        {
            await session.HandshakeAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            session.Dispose();
            throw;
        }
        _tls = session;
        return session.Info;
    }

    /// <summary>What a receive may find: bytes in the socket, or decrypted bytes TLS holds.</summary>
    internal bool MaybeReadable => _socket.MaybeReadable || (_tls?.HasBuffered ?? false);

    /// <summary>One receive into <paramref name="buffer"/> (plaintext under TLS): the count, 0 at the peer's close, -1 when nothing is there yet.</summary>
    internal int Receive(Span<byte> buffer) => _tls is { } tls ? tls.Receive(buffer) : _socket.TryReceive(buffer);

    /// <summary>One send (plaintext under TLS): the bytes taken, -1 when the socket is full.</summary>
    internal int Send(ReadOnlySpan<byte> data) => _tls is { } tls ? tls.Send(data) : _socket.TrySend(data);

    public override void Abort(ConnectionAbortedException abortReason)
    {
        _abortReason ??= abortReason;
        _socket.Shutdown(Libc.SHUT_RDWR);
        _socket.WakeReader();
        _socket.WakeWriter();
        OnPeerClosed();
    }

    /// <summary>The peer's FIN or reset, a failed send, or an abort: <see cref="ConnectionClosed"/> fires (off the loop thread, as in Kestrel's transport).</summary>
    public void OnPeerClosed()
    {
        if (Interlocked.Exchange(ref _closedSignalled, 1) == 0)
        {
            ThreadPool.UnsafeQueueUserWorkItem(static c => c.CancelClosed(), this, preferLocal: false);
        }
    }

    private void CancelClosed()
    {
        try
        {
            _closed.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // Disposed meanwhile: nobody is listening any more.
        }
    }

    internal void OnInputCompleted() => _inputCompleted = true;

    /// <summary>The application completed its output: once <paramref name="drain"/> (the unsent rest) is out, both directions shut.</summary>
    internal void OnOutputCompleted(Task? drain)
    {
        if (drain is null)
        {
            Finish();
            return;
        }
        _drain = drain.ContinueWith(static (_, s) => ((EpollConnection)s!).Finish(), this, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    /// <summary>Kestrel's transport ends a connection whose output completed with shutdown(both) (a FIN to the client), then the close.</summary>
    private void Finish()
    {
        if (Interlocked.Exchange(ref _finished, 1) == 0)
        {
            _socket.Shutdown(Libc.SHUT_RDWR);
            OnPeerClosed();
        }
    }

    public override async ValueTask DisposeAsync()
    {
        if (!_inputCompleted)
        {
            _input.Complete();
        }
        _output.Complete();
        if (_drain is { } drain && !drain.IsCompleted)
        {
            try
            {
                await drain.WaitAsync(DrainTimeout).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                Abort(new ConnectionAbortedException("The client did not take the last response bytes in time."));
                await drain.ConfigureAwait(false);
            }
        }
        Finish();
        _output.Release();
        _tls?.Dispose();
        _socket.Dispose();
        _closed.Dispose();
    }

    private unsafe EndPoint? LocalAddress()
    {
        Libc.SockAddr address;
        var length = sizeof(Libc.SockAddr);
        return !_socket.IsClosed && Libc.getsockname(_socket.Fd, &address, &length) == 0 ? Libc.ToEndPoint(&address) : null;
    }
}
