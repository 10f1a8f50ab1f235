using System.Runtime.InteropServices;

namespace EdgeProxy.Transport;

/// <summary>
/// One certificate generation as an OpenSSL server context (SSL_CTX): the leaf and the chain from
/// the certificate file, its key, TLS 1.2 (the runtime's suites, as Kestrel's TLS) and 1.3 only, no
/// renegotiation, no compression, ALPN h2
/// then http/1.1, and stateless session tickets with no session cache (memory does not grow with
/// clients). Connections hold their own reference to the context, so a reload that publishes a new
/// one leaves open connections on the old one until they end.
/// </summary>
internal sealed unsafe class TlsContext : SafeHandle
{
    /// <summary>ALPN in the server's order of preference, in the wire format (length-prefixed names).</summary>
    private static ReadOnlySpan<byte> AlpnWire => "\u0002h2\u0008http/1.1"u8;

    /// <summary><see cref="AlpnWire"/> in native memory for the life of the process: OpenSSL may point into it after the callback returns.</summary>
    private static readonly byte* Alpn = Native(AlpnWire);

    private const string Tls12Ciphers = "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256:"
        + "ECDHE-ECDSA-AES256-SHA384:ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES256-SHA384:ECDHE-RSA-AES128-SHA256";

    private TlsContext()
        : base(0, ownsHandle: true)
    {
    }

    public override bool IsInvalid => handle == 0;

    protected override bool ReleaseHandle()
    {
        OpenSsl.SSL_CTX_free(handle);
        return true;
    }

    /// <summary>
    /// A context for the PEM certificate file (leaf first, then its chain) and key file contents,
    /// which the caller has already validated; throws <see cref="TlsException"/> with OpenSSL's
    /// reason when OpenSSL refuses them, and <see cref="DllNotFoundException"/> or
    /// <see cref="EntryPointNotFoundException"/> when there is no OpenSSL 3.
    /// </summary>
    public static TlsContext Create(ReadOnlySpan<byte> certPem, ReadOnlySpan<byte> keyPem)
    {
        var context = new TlsContext();
        OpenSsl.ERR_clear_error();
        var ctx = OpenSsl.SSL_CTX_new(OpenSsl.TLS_server_method());
        if (ctx == 0)
        {
            throw Failure("cannot create a TLS context");
        }
        context.SetHandle(ctx);
        try
        {
            Configure(ctx);
            fixed (byte* cert = certPem)
            fixed (byte* key = keyPem)
            {
                UseCertificates(ctx, cert, certPem.Length);
                UseKey(ctx, key, keyPem.Length);
            }
        }
        catch
        {
            context.Dispose();
            throw;
        }
        return context;
    }

    private static void Configure(nint ctx)
    {
        if (OpenSsl.SSL_CTX_ctrl(ctx, OpenSsl.SSL_CTRL_SET_MIN_PROTO_VERSION, OpenSsl.TLS1_2_VERSION, 0) != 1)
        {
            throw Failure("cannot require TLS 1.2");
        }
        // TLS 1.2 suites: the runtime's default list, which Kestrel's TLS offers on the socket
        // transport (ECDHE only, AES-GCM or AES-CBC with SHA-256/384; no SHA-1 MACs, no RSA key
        // exchange). TLS 1.3 keeps OpenSSL's three suites. The client's order of preference wins.
        if (OpenSsl.SSL_CTX_set_cipher_list(ctx, Tls12Ciphers) != 1)
        {
            throw Failure("cannot set the TLS 1.2 cipher suites");
        }
        // RFC 9113 §9.2.1: no renegotiation under HTTP/2 (and none for HTTP/1.1 clients either).
        // A peer closing without close_notify is a plain end of stream, as for HTTP clients everywhere.
        OpenSsl.SSL_CTX_set_options(ctx, OpenSsl.SSL_OP_NO_RENEGOTIATION | OpenSsl.SSL_OP_NO_COMPRESSION | OpenSsl.SSL_OP_IGNORE_UNEXPECTED_EOF);
        // Partial writes and moving buffers: a write returns what went out, as send does, from pool
        // arrays the GC may move between retries. Released buffers: an idle connection holds none.
        OpenSsl.SSL_CTX_ctrl(ctx, OpenSsl.SSL_CTRL_MODE, OpenSsl.SSL_MODE_ENABLE_PARTIAL_WRITE | OpenSsl.SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | OpenSsl.SSL_MODE_RELEASE_BUFFERS, 0);
        // Read ahead: one receive takes whatever the kernel holds instead of a record header, then its body.
        OpenSsl.SSL_CTX_ctrl(ctx, OpenSsl.SSL_CTRL_SET_READ_AHEAD, 1, 0);
        OpenSsl.SSL_CTX_ctrl(ctx, OpenSsl.SSL_CTRL_SET_SESS_CACHE_MODE, OpenSsl.SSL_SESS_CACHE_SERVER | OpenSsl.SSL_SESS_CACHE_NO_INTERNAL, 0);
        OpenSsl.SSL_CTX_set_alpn_select_cb(ctx, &SelectAlpn, 0);
    }

    /// <summary>The leaf (the file's first certificate), then every certificate after it as the chain sent in handshakes.</summary>
    private static void UseCertificates(nint ctx, byte* pem, int length)
    {
        using var bio = new PemBio(pem, length);
        var leaf = OpenSsl.PEM_read_bio_X509(bio.Handle, 0, 0, 0);
        if (leaf == 0)
        {
            throw Failure("cannot read the certificate");
        }
        var used = OpenSsl.SSL_CTX_use_certificate(ctx, leaf);
        OpenSsl.X509_free(leaf);   // the context took its own reference
        if (used != 1)
        {
            throw Failure("cannot use the certificate");
        }
        nint link;
        while ((link = OpenSsl.PEM_read_bio_X509(bio.Handle, 0, 0, 0)) != 0)
        {
            if (OpenSsl.SSL_CTX_ctrl(ctx, OpenSsl.SSL_CTRL_CHAIN_CERT, 0, link) != 1)   // add0: the context owns it now
            {
                OpenSsl.X509_free(link);
                throw Failure("cannot add a chain certificate");
            }
        }
        OpenSsl.ERR_clear_error();   // the loop ends on "no start line"
    }

    private static void UseKey(nint ctx, byte* pem, int length)
    {
        using var bio = new PemBio(pem, length);
        var key = OpenSsl.PEM_read_bio_PrivateKey(bio.Handle, 0, 0, 0);
        if (key == 0)
        {
            throw Failure("cannot read the private key");
        }
        var used = OpenSsl.SSL_CTX_use_PrivateKey(ctx, key);
        OpenSsl.EVP_PKEY_free(key);
        if (used != 1 || OpenSsl.SSL_CTX_check_private_key(ctx) != 1)
        {
            throw Failure("the private key does not match the certificate");
        }
    }

    /// <summary>A read-only memory BIO over PEM bytes, which must stay pinned until it is disposed (OpenSSL does not copy them).</summary>
    private readonly ref struct PemBio
    {
        public PemBio(byte* pem, int length)
        {
            Handle = OpenSsl.BIO_new_mem_buf(pem, length);
            if (Handle == 0)
            {
                throw Failure("out of memory");
            }
        }

        public nint Handle { get; }

        public void Dispose() => OpenSsl.BIO_free(Handle);
    }

    /// <summary>Starts a connection's TLS session on this context (the session holds a reference to it).</summary>
    public nint NewSession()
    {
        var added = false;
        DangerousAddRef(ref added);
        try
        {
            return OpenSsl.SSL_new(handle);
        }
        finally
        {
            DangerousRelease();
        }
    }

    private static TlsException Failure(string what) => new($"{what}: {OpenSsl.TakeError() ?? "no reason given"}");

    /// <summary>Picks the first of the server's protocols the client offers; none in common: no ALPN (the connection speaks HTTP/1.1).</summary>
    [UnmanagedCallersOnly]
    private static int SelectAlpn(nint ssl, byte** selected, byte* selectedLength, byte* offered, uint offeredLength, nint arg)
        => OpenSsl.SSL_select_next_proto(selected, selectedLength, Alpn, (uint)AlpnWire.Length, offered, offeredLength) == OpenSsl.OPENSSL_NPN_NEGOTIATED
            ? OpenSsl.SSL_TLSEXT_ERR_OK
            : OpenSsl.SSL_TLSEXT_ERR_NOACK;

    private static byte* Native(ReadOnlySpan<byte> bytes)
    {
        var copy = (byte*)NativeMemory.Alloc((nuint)bytes.Length);
        bytes.CopyTo(new Span<byte>(copy, bytes.Length));
        return copy;
    }
}

/// <summary>OpenSSL refused something: what, and OpenSSL's reason.</summary>
internal sealed class TlsException(string message) : Exception(message);
