using System.Runtime.InteropServices;

namespace EdgeProxy.Transport;

/// <summary>The Linux calls the epoll transport makes, straight to libc (no runtime socket layer in between).</summary>
internal static unsafe partial class Libc
{
    public const int EINTR = 4, EAGAIN = 11, EPIPE = 32, ECONNABORTED = 103, ECONNRESET = 104, ENOTCONN = 107, EINPROGRESS = 115;
    public const int EMFILE = 24, ENFILE = 23, ENOBUFS = 105, ENOMEM = 12, EBADF = 9;
    public const int AF_INET = 2, AF_INET6 = 10;
    public const int SOCK_STREAM = 1, SOCK_NONBLOCK = 0x800, SOCK_CLOEXEC = 0x80000;
    public const int SOL_SOCKET = 1, SO_REUSEADDR = 2, SO_ERROR = 4, IPPROTO_TCP = 6, TCP_NODELAY = 1, IPPROTO_IPV6 = 41, IPV6_V6ONLY = 26;
    public const int MSG_NOSIGNAL = 0x4000, MSG_PEEK = 0x2;
    public const int SHUT_RDWR = 2;
    public const int EPOLL_CLOEXEC = 0x80000, EPOLL_CTL_ADD = 1, EPOLL_CTL_DEL = 2;
    public const uint EPOLLIN = 0x1, EPOLLOUT = 0x4, EPOLLERR = 0x8, EPOLLHUP = 0x10, EPOLLRDHUP = 0x2000, EPOLLET = 1u << 31;
    public const int EFD_CLOEXEC = 0x80000, EFD_NONBLOCK = 0x800;

    /// <summary>Big enough for sockaddr_in and sockaddr_in6.</summary>
    [StructLayout(LayoutKind.Sequential, Size = 28)]
    public struct SockAddr
    {
        public ushort Family;
    }

    [LibraryImport("libc", SetLastError = true)] public static partial int epoll_create1(int flags);
    // The events are the architecture's struct epoll_event (EpollEvent.cs): its layout differs between architectures.
    [LibraryImport("libc", SetLastError = true)] public static partial int epoll_ctl(int epfd, int op, int fd, void* ev);
    [LibraryImport("libc", SetLastError = true)] public static partial int epoll_wait(int epfd, void* events, int maxEvents, int timeout);
    [LibraryImport("libc", SetLastError = true)] public static partial int eventfd(uint initval, int flags);
    [LibraryImport("libc", SetLastError = true)] public static partial nint write(int fd, byte* buffer, nint length);
    [LibraryImport("libc", SetLastError = true)] public static partial int socket(int domain, int type, int protocol);
    [LibraryImport("libc", SetLastError = true)] public static partial int connect(int fd, SockAddr* address, int length);
    [LibraryImport("libc", SetLastError = true)] public static partial int bind(int fd, SockAddr* address, int length);
    [LibraryImport("libc", SetLastError = true)] public static partial int listen(int fd, int backlog);
    [LibraryImport("libc"), SuppressGCTransition] public static partial int accept4(int fd, SockAddr* address, int* length, int flags);
    [LibraryImport("libc"), SuppressGCTransition] public static partial nint recv(int fd, byte* buffer, nint length, int flags);
    [LibraryImport("libc"), SuppressGCTransition] public static partial nint send(int fd, byte* buffer, nint length, int flags);
    [LibraryImport("libc", SetLastError = true)] public static partial int shutdown(int fd, int how);
    [LibraryImport("libc", SetLastError = true)] public static partial int close(int fd);
    [LibraryImport("libc", SetLastError = true)] public static partial int setsockopt(int fd, int level, int name, int* value, int length);
    [LibraryImport("libc", SetLastError = true)] public static partial int getsockopt(int fd, int level, int name, int* value, int* length);
    [LibraryImport("libc", SetLastError = true)] public static partial int getsockname(int fd, SockAddr* address, int* length);

    public static int Errno => Marshal.GetLastPInvokeError();

    /// <summary>
    /// errno straight after one of the hot calls (recv, send, accept4). They are declared without
    /// SetLastError and with SuppressGCTransition: on a non-blocking socket they return within
    /// microseconds, so the GC-mode switch and the errno save/restore around each call (measurable
    /// under load) buy nothing, and nothing runs between the call and this
    /// read that could overwrite errno.
    /// </summary>
    public static int LastError => Marshal.GetLastSystemError();

    /// <summary>A Linux errno as the <see cref="System.Net.Sockets.SocketException"/> the runtime's sockets would throw (its SocketErrorCode is not the errno).</summary>
    public static System.Net.Sockets.SocketException SocketError(int errno) => new((int)(errno switch
    {
        EPIPE => System.Net.Sockets.SocketError.Shutdown,
        ECONNRESET => System.Net.Sockets.SocketError.ConnectionReset,
        ECONNABORTED => System.Net.Sockets.SocketError.ConnectionAborted,
        ENOTCONN => System.Net.Sockets.SocketError.NotConnected,
        111 => System.Net.Sockets.SocketError.ConnectionRefused,
        110 => System.Net.Sockets.SocketError.TimedOut,
        113 => System.Net.Sockets.SocketError.HostUnreachable,
        112 => System.Net.Sockets.SocketError.HostDown,
        101 => System.Net.Sockets.SocketError.NetworkUnreachable,
        100 => System.Net.Sockets.SocketError.NetworkDown,
        98 => System.Net.Sockets.SocketError.AddressAlreadyInUse,
        99 => System.Net.Sockets.SocketError.AddressNotAvailable,
        97 => System.Net.Sockets.SocketError.AddressFamilyNotSupported,
        EMFILE or ENFILE => System.Net.Sockets.SocketError.TooManyOpenSockets,
        ENOBUFS or ENOMEM => System.Net.Sockets.SocketError.NoBufferSpaceAvailable,
        22 => System.Net.Sockets.SocketError.InvalidArgument,
        9 => System.Net.Sockets.SocketError.OperationAborted,
        _ => System.Net.Sockets.SocketError.SocketError,
    }));

    /// <summary>An IPEndPoint from a sockaddr_in / sockaddr_in6 (null for other families).</summary>
    public static System.Net.IPEndPoint? ToEndPoint(SockAddr* address)
    {
        var bytes = (byte*)address;
        var port = (bytes[2] << 8) | bytes[3];
        if (address->Family == AF_INET)
        {
            return new System.Net.IPEndPoint(new System.Net.IPAddress(new ReadOnlySpan<byte>(bytes + 4, 4)), port);
        }
        if (address->Family == AF_INET6)
        {
            var scope = *(uint*)(bytes + 24);
            return new System.Net.IPEndPoint(new System.Net.IPAddress(new ReadOnlySpan<byte>(bytes + 8, 16), scope), port);
        }
        return null;
    }

    /// <summary>Writes <paramref name="endPoint"/> as a sockaddr; returns its length.</summary>
    public static int FromEndPoint(System.Net.IPEndPoint endPoint, SockAddr* address)
    {
        var bytes = (byte*)address;
        new Span<byte>(bytes, sizeof(SockAddr)).Clear();
        bytes[2] = (byte)(endPoint.Port >> 8);
        bytes[3] = (byte)endPoint.Port;
        if (endPoint.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork)
        {
            address->Family = AF_INET;
            endPoint.Address.TryWriteBytes(new Span<byte>(bytes + 4, 4), out _);
            return 16;
        }
        address->Family = AF_INET6;
        endPoint.Address.TryWriteBytes(new Span<byte>(bytes + 8, 16), out _);
        *(uint*)(bytes + 24) = (uint)endPoint.Address.ScopeId;
        return 28;
    }
}
