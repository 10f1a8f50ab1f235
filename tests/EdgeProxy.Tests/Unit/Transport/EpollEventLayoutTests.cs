using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using EdgeProxy.Tests.Infrastructure;
using EdgeProxy.Transport;

namespace EdgeProxy.Tests.Unit.Transport;

/// <summary>
/// struct epoll_event's layout differs by architecture (12 bytes packed on x86-64, 16 naturally
/// aligned on arm64); the event loop reads batches at the stride of the one it picks. Both
/// declarations are checked on every box, and the pick against the running architecture, its C
/// headers and its kernel.
/// </summary>
public sealed class EpollEventLayoutTests
{
    private const uint SomeEvents = 0x8000_2005;   // EPOLLET | EPOLLRDHUP | EPOLLOUT | EPOLLIN
    private const ulong SomeData = 0x1122_3344_5566_7788;

    [Fact]
    public void The_packed_declaration_is_12_bytes_with_data_at_offset_4()
    {
        Assert.Equal(12, Unsafe.SizeOf<PackedEpollEvent>());
        Assert.Equal((0, 4), Offsets<PackedEpollEvent>());
    }

    [Fact]
    public void The_aligned_declaration_is_16_bytes_with_data_at_offset_8()
    {
        Assert.Equal(16, Unsafe.SizeOf<AlignedEpollEvent>());
        Assert.Equal((0, 8), Offsets<AlignedEpollEvent>());
    }

    [Fact]
    public void The_running_architecture_gets_its_kernel_layout()
    {
        var expected = RuntimeInformation.ProcessArchitecture switch
        {
            Architecture.X64 or Architecture.X86 => (Packed: true, Size: 12),
            _ => (Packed: false, Size: 16),   // arm64 and every other architecture
        };
        Assert.Equal(expected, (EpollEvent.IsPacked, EpollEvent.Size));
    }

    [GccFact]
    public void The_layout_matches_the_C_headers_of_this_machine()
    {
        var dir = Directory.CreateTempSubdirectory("edgeproxy-epoll-layout-");
        try
        {
            var source = Path.Combine(dir.FullName, "layout.c");
            var program = Path.Combine(dir.FullName, "layout");
            File.WriteAllText(source, """
                #include <stddef.h>
                #include <stdio.h>
                #include <sys/epoll.h>
                int main(void)
                {
                    printf("%zu %zu %zu\n", sizeof(struct epoll_event), offsetof(struct epoll_event, events), offsetof(struct epoll_event, data));
                    return 0;
                }
                """);
            Run(Gcc.Path!, ["-o", program, source]);
            var printed = Run(program, []).Split(' ', StringSplitOptions.TrimEntries).Select(int.Parse).ToArray();

            var (eventsAt, dataAt) = EpollEvent.IsPacked ? Offsets<PackedEpollEvent>() : Offsets<AlignedEpollEvent>();
            Assert.Equal(new[] { EpollEvent.Size, eventsAt, dataAt }, printed);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void The_kernel_fills_a_batch_at_the_chosen_stride()
    {
        if (EpollEvent.IsPacked)
        {
            AssertKernelRoundTrip<PackedEpollEvent>();
        }
        else
        {
            AssertKernelRoundTrip<AlignedEpollEvent>();
        }
    }

    /// <summary>
    /// Three ready eventfds, each registered with its own data (both halves distinct), come back from
    /// one epoll_wait into a buffer of <typeparamref name="TEvent"/>: a wrong stride would misread the
    /// second and third.
    /// </summary>
    private static unsafe void AssertKernelRoundTrip<TEvent>() where TEvent : unmanaged, IEpollEvent<TEvent>
    {
        const int Count = 3;
        var epoll = Libc.epoll_create1(Libc.EPOLL_CLOEXEC);
        Assert.True(epoll >= 0, $"epoll_create1: errno {Libc.Errno}");
        var fds = new List<int>();
        try
        {
            var tags = new HashSet<ulong>();
            for (var i = 0; i < Count; i++)
            {
                var fd = Libc.eventfd(0, Libc.EFD_CLOEXEC | Libc.EFD_NONBLOCK);
                Assert.True(fd >= 0, $"eventfd: errno {Libc.Errno}");
                fds.Add(fd);
                var tag = SomeData + ((ulong)i << 56) + (ulong)i;
                tags.Add(tag);
                Assert.Equal(0, EpollEvent.Control(epoll, Libc.EPOLL_CTL_ADD, fd, Libc.EPOLLIN, tag));
                ulong one = 1;
                Assert.Equal(sizeof(ulong), (int)Libc.write(fd, (byte*)&one, sizeof(ulong)));
            }

            var batch = stackalloc TEvent[8];
            var n = Libc.epoll_wait(epoll, batch, 8, 5000);

            Assert.Equal(Count, n);
            var seen = new HashSet<ulong>();
            for (var i = 0; i < n; i++)
            {
                Assert.Equal(Libc.EPOLLIN, batch[i].Events);
                seen.Add(batch[i].Data);
            }
            Assert.Equal(tags, seen);
        }
        finally
        {
            foreach (var fd in fds)
            {
                Libc.close(fd);
            }
            Libc.close(epoll);
        }
    }

    /// <summary>Where a declaration puts events and data, read from the bytes of one it made.</summary>
    private static (int Events, int Data) Offsets<TEvent>() where TEvent : unmanaged, IEpollEvent<TEvent>
    {
        var ev = TEvent.Create(SomeEvents, SomeData);
        Assert.Equal((SomeEvents, SomeData), (ev.Events, ev.Data));
        var bytes = MemoryMarshal.AsBytes(new ReadOnlySpan<TEvent>(in ev));
        return (
            bytes.IndexOf(BitConverter.GetBytes(SomeEvents)),
            bytes.IndexOf(BitConverter.GetBytes(SomeData)));
    }

    private static string Run(string fileName, string[] args)
    {
        var start = new ProcessStartInfo(fileName, args) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        Assert.True(process.WaitForExit(TimeSpan.FromSeconds(60)), $"{fileName} did not finish");
        Assert.True(process.ExitCode == 0, $"{fileName} exited {process.ExitCode}: {stderr.Result}");
        return stdout.Result.Trim();
    }
}
