using System.Net.Security;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Security.Authentication;
using Microsoft.AspNetCore.Connections;

namespace EdgeProxy.Transport;

/// <summary>
/// TLS on one epoll connection, with OpenSSL reading and writing the socket as nginx does: the
/// connection's pipe reader and writer call <see cref="Receive"/> and <see cref="Send"/> where they
/// would call recv and send, so TLS adds no buffer, stream or async hop of its own. OpenSSL reaches
/// the socket through a BIO whose callbacks are <see cref="EpollSocket.TryReceive"/> and
/// <see cref="EpollSocket.TrySend"/>: the readiness memory, the descriptor's reference count (a
/// close on another thread never lets a call touch a reused descriptor) and the error mapping are
/// the plain connection's. An SSL object is not thread-safe and HTTP/2 reads and writes at once,
/// so every call into it holds the session's lock; no call blocks.
/// </summary>
internal sealed class TlsSession : IDisposable
{
    private static readonly nint BioMethod = CreateBioMethod();

    private readonly EpollSocket _socket;
    private readonly Lock _gate = new();
    private GCHandle _self;
    private nint _ssl;

    /// <summary>A failure a BIO callback met (a socket error, a closed descriptor), rethrown once OpenSSL has returned.</summary>
    private Exception? _ioError;

    private TlsSession(EpollSocket socket, nint ssl)
    {
        _socket = socket;
        _ssl = ssl;
        _self = GCHandle.Alloc(this);
    }

    /// <summary>OpenSSL holds received bytes (a record decrypted or not yet) after the last handshake step or <see cref="Receive"/>: readable whatever the socket says.</summary>
    public bool HasBuffered { get; private set; }

    /// <summary>The negotiated protocol, cipher suite, ALPN protocol and SNI name, read once after the handshake.</summary>
    public TlsSessionInfo Info { get; private set; }

    public static TlsSession Create(TlsContext context, EpollSocket socket)
    {
        OpenSsl.ERR_clear_error();
        var ssl = context.NewSession();
        if (ssl == 0)
        {
            throw new TlsException("cannot create a TLS session: " + (OpenSsl.TakeError() ?? "out of memory"));
        }
        var session = new TlsSession(socket, ssl);
        var bio = OpenSsl.BIO_new(BioMethod);
        if (bio == 0)
        {
            session.Dispose();
            throw new TlsException("cannot create a TLS session: out of memory");
        }
        OpenSsl.BIO_set_data(bio, GCHandle.ToIntPtr(session._self));
        OpenSsl.BIO_set_init(bio, 1);
        OpenSsl.SSL_set_bio(ssl, bio, bio);   // one BIO both ways: the session owns its one reference
        OpenSsl.SSL_set_accept_state(ssl);
        return session;
    }

    /// <summary>
    /// The server handshake, waiting for the socket between steps; throws <see cref="AuthenticationException"/>
    /// when it fails, the socket's failure, or <see cref="OperationCanceledException"/> at <paramref name="cancellationToken"/>.
    /// </summary>
    public async Task HandshakeAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            int error;
            lock (_gate)
            {
                var ssl = Handle();
                OpenSsl.ERR_clear_error();
                var result = OpenSsl.SSL_do_handshake(ssl);
                if (result == 1)
                {
                    Info = TlsSessionInfo.Read(ssl);
                    // The client's first request may have come in the receive that brought its
                    // Finished: OpenSSL then holds it while the socket is already known empty.
                    HasBuffered = OpenSsl.SSL_has_pending(ssl) != 0;
                    return;
                }
                error = OpenSsl.SSL_get_error(ssl, result);
                if (error is not (OpenSsl.SSL_ERROR_WANT_READ or OpenSsl.SSL_ERROR_WANT_WRITE))
                {
                    throw TakeIoError() ?? new AuthenticationException("TLS handshake failed: " + (OpenSsl.TakeError() ?? (error == OpenSsl.SSL_ERROR_SYSCALL ? "the peer closed the connection" : "error " + error)));
                }
            }
            await (error == OpenSsl.SSL_ERROR_WANT_READ ? _socket.WaitReadableAsync(cancellationToken) : _socket.WaitWritableAsync(cancellationToken)).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Decrypted bytes into <paramref name="buffer"/> (every complete record there is, up to its
    /// size), 0 at the peer's close, or -1 when a record is not complete yet (wait for readability).
    /// Throws the socket's failure as <see cref="SocketException"/>, a TLS failure as <see cref="ConnectionAbortedException"/>.
    /// </summary>
    public unsafe int Receive(Span<byte> buffer)
    {
        var total = 0;
        lock (_gate)
        {
            var ssl = Handle();
            fixed (byte* p = buffer)
            {
                while (true)
                {
                    OpenSsl.ERR_clear_error();
                    var n = OpenSsl.SSL_read(ssl, p + total, buffer.Length - total);
                    if (n > 0)
                    {
                        total += n;
                        // More records only when OpenSSL holds bytes: otherwise the next read would only find the socket empty.
                        HasBuffered = OpenSsl.SSL_has_pending(ssl) != 0;
                        if (total == buffer.Length || !HasBuffered)
                        {
                            return total;
                        }
                        continue;
                    }
                    var error = OpenSsl.SSL_get_error(ssl, n);
                    if (error == OpenSsl.SSL_ERROR_WANT_READ)
                    {
                        HasBuffered = false;
                        return total > 0 ? total : -1;
                    }
                    if (total > 0)
                    {
                        // Hand over what was decrypted; the failure or the close shows on the next call.
                        HasBuffered = true;
                        return total;
                    }
                    if (error == OpenSsl.SSL_ERROR_ZERO_RETURN)
                    {
                        HasBuffered = false;
                        return 0;
                    }
                    throw Failure(error, "receive");
                }
            }
        }
    }

    /// <summary>Plaintext bytes taken (each in records the kernel accepted), or -1 when the socket is full. Throws as <see cref="Receive"/>.</summary>
    public unsafe int Send(ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty)
        {
            return 0;
        }
        lock (_gate)
        {
            var ssl = Handle();
            int n;
            fixed (byte* p = data)
            {
                OpenSsl.ERR_clear_error();
                n = OpenSsl.SSL_write(ssl, p, data.Length);
            }
            if (n > 0)
            {
                return n;
            }
            var error = OpenSsl.SSL_get_error(ssl, n);
            return error == OpenSsl.SSL_ERROR_WANT_WRITE ? -1 : throw Failure(error, "send");
        }
    }

    /// <summary>The SSL object, or the connection's end when the session was disposed.</summary>
    private nint Handle() => _ssl != 0 ? _ssl : throw new ConnectionAbortedException("The TLS session has ended.");

    /// <summary>
    /// A failed read or write: the socket's own failure when a BIO callback met one, else the TLS
    /// error (a bad record, a fatal alert). Wanting the other direction counts as a failure: with
    /// renegotiation off and TLS 1.3's key updates sent by the next write, a read never needs to
    /// write nor a write to read.
    /// </summary>
    private Exception Failure(int error, string operation)
    {
        if (TakeIoError() is { } ioError)
        {
            return ioError;
        }
        var reason = OpenSsl.TakeError() ?? error switch
        {
            OpenSsl.SSL_ERROR_SYSCALL => "the connection ended inside a TLS record",
            OpenSsl.SSL_ERROR_WANT_READ or OpenSsl.SSL_ERROR_WANT_WRITE => "the TLS session asked for renegotiation",
            _ => "error " + error,
        };
        return new ConnectionAbortedException($"TLS {operation} failed: {reason}");
    }

    /// <summary>The failure a BIO callback kept, if any (the socket's own <see cref="SocketException"/> as is), with OpenSSL's error queue cleared.</summary>
    private Exception? TakeIoError()
    {
        if (_ioError is not { } error)
        {
            return null;
        }
        _ioError = null;
        OpenSsl.ERR_clear_error();
        return error as SocketException ?? (Exception)new ConnectionAbortedException(error.Message, error);
    }

    /// <summary>Frees the SSL object (no close_notify is sent: the connection is ending, as with Kestrel's TLS).</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_ssl != 0)
            {
                OpenSsl.SSL_free(_ssl);   // frees the BIO too
                _ssl = 0;
            }
            if (_self.IsAllocated)
            {
                _self.Free();
            }
        }
    }

    // ---- the BIO: OpenSSL's reads and writes of the socket ----

    private static unsafe nint CreateBioMethod()
    {
        var method = OpenSsl.BIO_meth_new(OpenSsl.BIO_get_new_index() | OpenSsl.BIO_TYPE_SOURCE_SINK, "edgeproxy epoll socket");
        if (method == 0
            || OpenSsl.BIO_meth_set_read_ex(method, &BioRead) != 1
            || OpenSsl.BIO_meth_set_write_ex(method, &BioWrite) != 1
            || OpenSsl.BIO_meth_set_ctrl(method, &BioCtrl) != 1)
        {
            throw new TlsException("cannot create the socket BIO: " + (OpenSsl.TakeError() ?? "out of memory"));
        }
        return method;
    }

    private static TlsSession? Owner(nint bio) => GCHandle.FromIntPtr(OpenSsl.BIO_get_data(bio)).Target as TlsSession;

    /// <summary>OpenSSL wants bytes: one receive (0 bytes without the retry flag is the peer's FIN).</summary>
    [UnmanagedCallersOnly]
    private static unsafe int BioRead(nint bio, byte* buffer, nuint length, nuint* read) => Transfer(bio, buffer, length, read, send: false);

    /// <summary>OpenSSL has a record to send: one send.</summary>
    [UnmanagedCallersOnly]
    private static unsafe int BioWrite(nint bio, byte* data, nuint length, nuint* written) => Transfer(bio, data, length, written, send: true);

    /// <summary>
    /// One receive or send on the session's socket. An empty or full socket sets the retry flag
    /// (SSL_ERROR_WANT_READ / WANT_WRITE); a failure is kept for the caller and ends the call as a
    /// failed transfer, since nothing may throw across OpenSSL's frames.
    /// </summary>
    private static unsafe int Transfer(nint bio, byte* bytes, nuint length, nuint* done, bool send)
    {
        *done = 0;
        OpenSsl.BIO_clear_flags(bio, OpenSsl.BIO_FLAGS_RWS | OpenSsl.BIO_FLAGS_SHOULD_RETRY);
        if (Owner(bio) is not { } session)
        {
            return 0;
        }
        try
        {
            var span = new Span<byte>(bytes, (int)Math.Min(length, int.MaxValue));
            var n = send ? session._socket.TrySend(span) : session._socket.TryReceive(span);
            if (n < 0)
            {
                OpenSsl.BIO_set_flags(bio, (send ? OpenSsl.BIO_FLAGS_WRITE : OpenSsl.BIO_FLAGS_READ) | OpenSsl.BIO_FLAGS_SHOULD_RETRY);
                return 0;
            }
            *done = (nuint)n;
            return n > 0 || send ? 1 : 0;
        }
        catch (Exception ex)
        {
            session._ioError = ex;
            return 0;
        }
    }

    /// <summary>Flush is a no-op (every write went to the kernel); nothing else is supported.</summary>
    [UnmanagedCallersOnly]
    private static long BioCtrl(nint bio, int command, long larg, nint parg) => command == OpenSsl.BIO_CTRL_FLUSH ? 1 : 0;
}

/// <summary>What the HTTP layers read off a TLS connection, copied out of the session once the handshake is done.</summary>
internal readonly record struct TlsSessionInfo(SslProtocols Protocol, TlsCipherSuite? CipherSuite, byte[] ApplicationProtocol, string? HostName)
{
    private static readonly byte[] H2 = "h2"u8.ToArray(), Http11 = "http/1.1"u8.ToArray();

    public static unsafe TlsSessionInfo Read(nint ssl)
    {
        var protocol = OpenSsl.SSL_version(ssl) switch
        {
            OpenSsl.TLS1_3_VERSION => SslProtocols.Tls13,
            OpenSsl.TLS1_2_VERSION => SslProtocols.Tls12,
            _ => SslProtocols.None,
        };
        var cipher = OpenSsl.SSL_get_current_cipher(ssl);
        byte* alpn;
        uint alpnLength;
        OpenSsl.SSL_get0_alpn_selected(ssl, &alpn, &alpnLength);
        var selected = new ReadOnlySpan<byte>(alpn, (int)alpnLength);
        var application = selected.SequenceEqual(H2) ? H2 : selected.SequenceEqual(Http11) ? Http11 : selected.ToArray();
        var name = OpenSsl.SSL_get_servername(ssl, OpenSsl.TLSEXT_NAMETYPE_host_name);
        return new TlsSessionInfo(protocol, cipher != 0 ? (TlsCipherSuite)OpenSsl.SSL_CIPHER_get_protocol_id(cipher) : null, application, name != 0 ? Marshal.PtrToStringUTF8(name) : null);
    }
}
