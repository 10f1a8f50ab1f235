using System.Runtime.InteropServices;

namespace EdgeProxy.Transport;

/// <summary>
/// The OpenSSL 3 calls TLS on the epoll transport makes (libssl.so.3, libcrypto.so.3, the library
/// the runtime's own crypto loads on Linux). Constants are those of OpenSSL 3's headers; the macros
/// (SSL_CTX_set_mode and friends) are spelled as the ctrl calls they expand to.
/// </summary>
internal static unsafe partial class OpenSsl
{
    private const string Ssl = "libssl.so.3";
    private const string Crypto = "libcrypto.so.3";

    public const int SSL_ERROR_NONE = 0, SSL_ERROR_SSL = 1, SSL_ERROR_WANT_READ = 2, SSL_ERROR_WANT_WRITE = 3, SSL_ERROR_SYSCALL = 5, SSL_ERROR_ZERO_RETURN = 6;
    public const int SSL_CTRL_MODE = 33, SSL_CTRL_SET_READ_AHEAD = 41, SSL_CTRL_SET_SESS_CACHE_MODE = 44, SSL_CTRL_CHAIN_CERT = 89, SSL_CTRL_SET_MIN_PROTO_VERSION = 123;
    public const long SSL_MODE_ENABLE_PARTIAL_WRITE = 0x1, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER = 0x2, SSL_MODE_RELEASE_BUFFERS = 0x10;
    public const long SSL_SESS_CACHE_SERVER = 0x2, SSL_SESS_CACHE_NO_INTERNAL = 0x300;
    public const ulong SSL_OP_IGNORE_UNEXPECTED_EOF = 0x80, SSL_OP_NO_COMPRESSION = 0x20000, SSL_OP_NO_RENEGOTIATION = 0x40000000;
    public const int TLS1_2_VERSION = 0x303, TLS1_3_VERSION = 0x304;
    public const int TLSEXT_NAMETYPE_host_name = 0, OPENSSL_NPN_NEGOTIATED = 1, SSL_TLSEXT_ERR_OK = 0, SSL_TLSEXT_ERR_NOACK = 3;
    public const int BIO_TYPE_SOURCE_SINK = 0x400, BIO_CTRL_FLUSH = 11;
    public const int BIO_FLAGS_READ = 0x1, BIO_FLAGS_WRITE = 0x2, BIO_FLAGS_RWS = 0x7, BIO_FLAGS_SHOULD_RETRY = 0x8;

    [LibraryImport(Ssl)] public static partial nint TLS_server_method();
    [LibraryImport(Ssl)] public static partial nint SSL_CTX_new(nint method);
    [LibraryImport(Ssl)] public static partial void SSL_CTX_free(nint ctx);
    [LibraryImport(Ssl)] public static partial long SSL_CTX_ctrl(nint ctx, int cmd, long larg, nint parg);
    [LibraryImport(Ssl)] public static partial ulong SSL_CTX_set_options(nint ctx, ulong options);
    [LibraryImport(Ssl, StringMarshalling = StringMarshalling.Utf8)] public static partial int SSL_CTX_set_cipher_list(nint ctx, string ciphers);
    [LibraryImport(Ssl)] public static partial int SSL_CTX_use_certificate(nint ctx, nint x509);
    [LibraryImport(Ssl)] public static partial int SSL_CTX_use_PrivateKey(nint ctx, nint key);
    [LibraryImport(Ssl)] public static partial int SSL_CTX_check_private_key(nint ctx);
    [LibraryImport(Ssl)] public static partial void SSL_CTX_set_alpn_select_cb(nint ctx, delegate* unmanaged<nint, byte**, byte*, byte*, uint, nint, int> callback, nint arg);
    [LibraryImport(Ssl)] public static partial int SSL_select_next_proto(byte** output, byte* outputLength, byte* server, uint serverLength, byte* client, uint clientLength);

    [LibraryImport(Ssl)] public static partial nint SSL_new(nint ctx);
    [LibraryImport(Ssl)] public static partial void SSL_free(nint ssl);
    [LibraryImport(Ssl)] public static partial void SSL_set_bio(nint ssl, nint readBio, nint writeBio);
    [LibraryImport(Ssl)] public static partial void SSL_set_accept_state(nint ssl);
    [LibraryImport(Ssl)] public static partial int SSL_do_handshake(nint ssl);
    [LibraryImport(Ssl)] public static partial int SSL_read(nint ssl, byte* buffer, int length);
    [LibraryImport(Ssl)] public static partial int SSL_write(nint ssl, byte* buffer, int length);
    [LibraryImport(Ssl), SuppressGCTransition] public static partial int SSL_has_pending(nint ssl);
    [LibraryImport(Ssl)] public static partial int SSL_get_error(nint ssl, int result);
    [LibraryImport(Ssl)] public static partial int SSL_version(nint ssl);
    [LibraryImport(Ssl)] public static partial nint SSL_get_current_cipher(nint ssl);
    [LibraryImport(Ssl)] public static partial ushort SSL_CIPHER_get_protocol_id(nint cipher);
    [LibraryImport(Ssl)] public static partial void SSL_get0_alpn_selected(nint ssl, byte** data, uint* length);
    [LibraryImport(Ssl)] public static partial nint SSL_get_servername(nint ssl, int type);

    [LibraryImport(Crypto)] public static partial int BIO_get_new_index();
    [LibraryImport(Crypto, StringMarshalling = StringMarshalling.Utf8)] public static partial nint BIO_meth_new(int type, string name);
    [LibraryImport(Crypto)] public static partial int BIO_meth_set_write_ex(nint method, delegate* unmanaged<nint, byte*, nuint, nuint*, int> write);
    [LibraryImport(Crypto)] public static partial int BIO_meth_set_read_ex(nint method, delegate* unmanaged<nint, byte*, nuint, nuint*, int> read);
    [LibraryImport(Crypto)] public static partial int BIO_meth_set_ctrl(nint method, delegate* unmanaged<nint, int, long, nint, long> ctrl);
    [LibraryImport(Crypto)] public static partial nint BIO_new(nint method);
    [LibraryImport(Crypto)] public static partial void BIO_set_init(nint bio, int init);
    [LibraryImport(Crypto)] public static partial void BIO_set_data(nint bio, nint data);
    [LibraryImport(Crypto), SuppressGCTransition] public static partial nint BIO_get_data(nint bio);
    [LibraryImport(Crypto), SuppressGCTransition] public static partial void BIO_set_flags(nint bio, int flags);
    [LibraryImport(Crypto), SuppressGCTransition] public static partial void BIO_clear_flags(nint bio, int flags);
    [LibraryImport(Crypto)] public static partial int BIO_free(nint bio);
    [LibraryImport(Crypto)] public static partial nint BIO_new_mem_buf(byte* buffer, int length);
    [LibraryImport(Crypto)] public static partial nint PEM_read_bio_X509(nint bio, nint x509, nint callback, nint userData);
    [LibraryImport(Crypto)] public static partial nint PEM_read_bio_PrivateKey(nint bio, nint key, nint callback, nint userData);
    [LibraryImport(Crypto)] public static partial void X509_free(nint x509);
    [LibraryImport(Crypto)] public static partial void EVP_PKEY_free(nint key);
    [LibraryImport(Crypto)] public static partial void ERR_clear_error();
    [LibraryImport(Crypto)] public static partial ulong ERR_get_error();
    [LibraryImport(Crypto)] public static partial void ERR_error_string_n(ulong error, byte* buffer, nuint length);

    /// <summary>The oldest error of this thread's OpenSSL error queue as text ("error:0A000086:SSL routines::certificate verify failed"), the queue cleared; null when it is empty.</summary>
    public static string? TakeError()
    {
        var code = ERR_get_error();
        ERR_clear_error();
        if (code == 0)
        {
            return null;
        }
        var text = stackalloc byte[256];
        ERR_error_string_n(code, text, 256);
        return Marshal.PtrToStringUTF8((nint)text);
    }
}
