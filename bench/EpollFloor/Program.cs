using System.Buffers.Text;
using System.Runtime.InteropServices;

// The epoll floor: what a C# Native AOT reverse proxy costs per request when it owns its I/O — one
// thread, level-triggered epoll, non-blocking recv/send through libc, no .NET socket engine, no
// Kestrel, no pipes, no async state machines. It answers the question bench/README.md leaves open
// (is the managed I/O stack the rest of the gap to nginx?) the way bench/KestrelFloor answers it
// for Kestrel + HttpClient. Not a gateway: GET-style requests without a body, one route
// (/bench/m/<path> -> upstream /<path>), Content-Length responses, one upstream keep-alive
// connection per client connection, no timeouts; anything else closes the connection.
//
//   PORT=18200 UPSTREAM=127.0.0.1:18080 bench/EpollFloor/out/epoll-floor
//
// Loopback only: both addresses must be 127.x.

var port = int.Parse(Environment.GetEnvironmentVariable("PORT") ?? "18200");
var upstream = (Environment.GetEnvironmentVariable("UPSTREAM") ?? "127.0.0.1:18080").Replace("http://", "");
var colon = upstream.LastIndexOf(':');
var upstreamIp = System.Net.IPAddress.Parse(upstream[..colon]);
if (upstreamIp.GetAddressBytes()[0] != 127)
{
    Console.Error.WriteLine("epoll-floor: UPSTREAM must be a loopback address (127.x)");
    return 2;
}
return new EpollFloor.Relay(port, upstreamIp, int.Parse(upstream[(colon + 1)..])).Run();

namespace EpollFloor
{
    internal sealed unsafe class Relay(int port, System.Net.IPAddress upstreamIp, int upstreamPort)
    {
        private const int BufferSize = 16 * 1024;
        private static ReadOnlySpan<byte> RoutePrefix => "/bench/m"u8;

        private readonly Dictionary<int, Connection> _connections = [];
        private int _epoll;

        private sealed class Connection(int fd, bool client)
        {
            public readonly int Fd = fd;
            public readonly bool Client = client;
            public readonly byte[] Buffer = new byte[BufferSize];
            public int Length;          // bytes buffered (client: request head so far; upstream: unsent response)
            public long Remaining = -1; // upstream: response bytes still to relay (-1: head not parsed yet)
            public Connection? Peer;
        }

        public int Run()
        {
            var listener = Libc.socket(Libc.AF_INET, Libc.SOCK_STREAM | Libc.SOCK_NONBLOCK | Libc.SOCK_CLOEXEC, 0);
            var one = 1;
            Libc.setsockopt(listener, Libc.SOL_SOCKET, Libc.SO_REUSEADDR, &one, sizeof(int));
            var address = SocketAddress(System.Net.IPAddress.Loopback, port);
            if (Libc.bind(listener, &address, sizeof(SockAddrIn)) != 0 || Libc.listen(listener, 512) != 0)
            {
                Console.Error.WriteLine($"epoll-floor: cannot listen on 127.0.0.1:{port} (errno {Marshal.GetLastPInvokeError()})");
                return 1;
            }
            _epoll = Libc.epoll_create1(Libc.EPOLL_CLOEXEC);
            Watch(listener);
            Console.WriteLine($"epoll-floor listening on 127.0.0.1:{port}, upstream {upstreamIp}:{upstreamPort}");

            var events = stackalloc EpollEvent[256];
            while (true)
            {
                var n = Libc.epoll_wait(_epoll, events, 256, -1);
                for (var i = 0; i < n; i++)
                {
                    var fd = (int)events[i].Data;
                    if (fd == listener)
                    {
                        Accept(listener);
                    }
                    else if (_connections.TryGetValue(fd, out var connection))
                    {
                        if (!(connection.Client ? OnClientReadable(connection) : OnUpstreamReadable(connection)))
                        {
                            Close(connection);
                        }
                    }
                }
            }
        }

        private void Accept(int listener)
        {
            while (true)
            {
                var fd = Libc.accept4(listener, null, null, Libc.SOCK_NONBLOCK | Libc.SOCK_CLOEXEC);
                if (fd < 0)
                {
                    return;
                }
                var one = 1;
                Libc.setsockopt(fd, Libc.IPPROTO_TCP, Libc.TCP_NODELAY, &one, sizeof(int));
                _connections[fd] = new Connection(fd, client: true);
                Watch(fd);
            }
        }

        /// <summary>Reads the request head; once whole, rewrites the route prefix away and sends it upstream.</summary>
        private bool OnClientReadable(Connection client)
        {
            fixed (byte* buffer = client.Buffer)
            {
                var n = Libc.recv(client.Fd, buffer + client.Length, BufferSize - client.Length, 0);
                if (n <= 0)
                {
                    return n < 0 && Marshal.GetLastPInvokeError() == Libc.EAGAIN;
                }
                client.Length += (int)n;
            }
            var head = client.Buffer.AsSpan(0, client.Length);
            var end = head.IndexOf("\r\n\r\n"u8);
            if (end < 0)
            {
                return client.Length < BufferSize;
            }
            // "GET /bench/m/v1/ping HTTP/1.1" -> "GET /v1/ping HTTP/1.1": drop the prefix after the method.
            var space = head.IndexOf((byte)' ');
            if (space < 0 || !head[(space + 1)..].StartsWith(RoutePrefix))
            {
                return false;
            }
            var upstreamConnection = client.Peer ??= Connect(client);
            if (upstreamConnection is null)
            {
                return false;
            }
            var request = client.Buffer;
            var requestEnd = end + 4;
            request.AsSpan(0, space + 1).CopyTo(upstreamConnection.Buffer);
            request.AsSpan(space + 1 + RoutePrefix.Length, requestEnd - space - 1 - RoutePrefix.Length).CopyTo(upstreamConnection.Buffer.AsSpan(space + 1));
            var length = requestEnd - RoutePrefix.Length;
            client.Length = 0;
            upstreamConnection.Remaining = -1;
            upstreamConnection.Length = 0;
            fixed (byte* buffer = upstreamConnection.Buffer)
            {
                return SendAll(upstreamConnection.Fd, buffer, length);
            }
        }

        /// <summary>Relays the response to the client as it arrives, up to its Content-Length.</summary>
        private bool OnUpstreamReadable(Connection upstreamConnection)
        {
            var client = upstreamConnection.Peer!;
            fixed (byte* buffer = upstreamConnection.Buffer)
            {
                var n = Libc.recv(upstreamConnection.Fd, buffer + upstreamConnection.Length, BufferSize - upstreamConnection.Length, 0);
                if (n <= 0)
                {
                    return n < 0 && Marshal.GetLastPInvokeError() == Libc.EAGAIN;
                }
                upstreamConnection.Length += (int)n;
                if (upstreamConnection.Remaining < 0)
                {
                    var head = upstreamConnection.Buffer.AsSpan(0, upstreamConnection.Length);
                    var end = head.IndexOf("\r\n\r\n"u8);
                    if (end < 0)
                    {
                        return upstreamConnection.Length < BufferSize;
                    }
                    var field = head[..end].IndexOf("\r\nContent-Length:"u8);
                    if (field < 0 || !Utf8Parser.TryParse(head[(field + 17)..end].TrimStart((byte)' '), out long contentLength, out _))
                    {
                        return false;
                    }
                    upstreamConnection.Remaining = end + 4 + contentLength;
                }
                var relay = (int)Math.Min(upstreamConnection.Length, upstreamConnection.Remaining);
                if (!SendAll(client.Fd, buffer, relay))
                {
                    return false;
                }
                upstreamConnection.Remaining -= relay;
                upstreamConnection.Length = 0;
                return true;
            }
        }

        private Connection? Connect(Connection client)
        {
            var fd = Libc.socket(Libc.AF_INET, Libc.SOCK_STREAM | Libc.SOCK_CLOEXEC, 0);
            var address = SocketAddress(upstreamIp, upstreamPort);
            if (Libc.connect(fd, &address, sizeof(SockAddrIn)) != 0)
            {
                Libc.close(fd);
                return null;
            }
            var one = 1;
            Libc.setsockopt(fd, Libc.IPPROTO_TCP, Libc.TCP_NODELAY, &one, sizeof(int));
            Libc.fcntl(fd, Libc.F_SETFL, Libc.O_NONBLOCK);
            var connection = new Connection(fd, client: false) { Peer = client };
            _connections[fd] = connection;
            Watch(fd);
            return connection;
        }

        /// <summary>Small messages on loopback: a short write is retried at once (a real proxy would wait for EPOLLOUT).</summary>
        private static bool SendAll(int fd, byte* data, int length)
        {
            while (length > 0)
            {
                var n = Libc.send(fd, data, length, Libc.MSG_NOSIGNAL);
                if (n < 0)
                {
                    if (Marshal.GetLastPInvokeError() == Libc.EAGAIN)
                    {
                        continue;
                    }
                    return false;
                }
                data += n;
                length -= (int)n;
            }
            return true;
        }

        private void Close(Connection connection)
        {
            foreach (var c in new[] { connection, connection.Peer })
            {
                if (c is not null && _connections.Remove(c.Fd))
                {
                    Libc.close(c.Fd);
                }
            }
        }

        private void Watch(int fd)
        {
            var ev = new EpollEvent { Events = Libc.EPOLLIN, Data = (ulong)fd };
            Libc.epoll_ctl(_epoll, Libc.EPOLL_CTL_ADD, fd, &ev);
        }

        private static SockAddrIn SocketAddress(System.Net.IPAddress ip, int port)
        {
            var address = new SockAddrIn { Family = Libc.AF_INET, Port = (ushort)System.Net.IPAddress.HostToNetworkOrder((short)port) };
            ip.TryWriteBytes(new Span<byte>(&address.Address, 4), out _);
            return address;
        }
    }

    [StructLayout(LayoutKind.Sequential, Pack = 1)]
    internal struct EpollEvent
    {
        public uint Events;
        public ulong Data;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct SockAddrIn
    {
        public ushort Family;
        public ushort Port;
        public uint Address;
        public ulong Zero;
    }

    internal static unsafe partial class Libc
    {
        public const int AF_INET = 2, SOCK_STREAM = 1, SOCK_NONBLOCK = 0x800, SOCK_CLOEXEC = 0x80000;
        public const int SOL_SOCKET = 1, SO_REUSEADDR = 2, IPPROTO_TCP = 6, TCP_NODELAY = 1;
        public const int EPOLL_CLOEXEC = 0x80000, EPOLL_CTL_ADD = 1, EAGAIN = 11, MSG_NOSIGNAL = 0x4000;
        public const int F_SETFL = 4, O_NONBLOCK = 0x800;
        public const uint EPOLLIN = 1;

        [LibraryImport("libc", SetLastError = true)] public static partial int socket(int domain, int type, int protocol);
        [LibraryImport("libc", SetLastError = true)] public static partial int bind(int fd, SockAddrIn* address, int length);
        [LibraryImport("libc", SetLastError = true)] public static partial int listen(int fd, int backlog);
        [LibraryImport("libc", SetLastError = true)] public static partial int accept4(int fd, SockAddrIn* address, int* length, int flags);
        [LibraryImport("libc", SetLastError = true)] public static partial int connect(int fd, SockAddrIn* address, int length);
        [LibraryImport("libc", SetLastError = true)] public static partial int setsockopt(int fd, int level, int name, int* value, int length);
        [LibraryImport("libc", SetLastError = true)] public static partial int fcntl(int fd, int command, int value);
        [LibraryImport("libc", SetLastError = true)] public static partial nint recv(int fd, byte* buffer, nint length, int flags);
        [LibraryImport("libc", SetLastError = true)] public static partial nint send(int fd, byte* buffer, nint length, int flags);
        [LibraryImport("libc", SetLastError = true)] public static partial int close(int fd);
        [LibraryImport("libc", SetLastError = true)] public static partial int epoll_create1(int flags);
        [LibraryImport("libc", SetLastError = true)] public static partial int epoll_ctl(int epfd, int op, int fd, EpollEvent* ev);
        [LibraryImport("libc", SetLastError = true)] public static partial int epoll_wait(int epfd, EpollEvent* events, int maxEvents, int timeout);
    }
}
