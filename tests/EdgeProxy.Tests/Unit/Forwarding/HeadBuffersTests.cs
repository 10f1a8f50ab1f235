using EdgeProxy.Forwarding;

namespace EdgeProxy.Tests.Unit.Forwarding;

/// <summary>The fast path's head buffers: per-thread free lists for 1–4 KiB, a pool above.</summary>
public sealed class HeadBuffersTests
{
    [Theory]
    [InlineData(1, 1024)]
    [InlineData(1024, 1024)]
    [InlineData(1025, 2048)]
    [InlineData(2048, 2048)]
    [InlineData(2049, 4096)]
    [InlineData(4096, 4096)]
    [InlineData(4097, 8192)]
    [InlineData(65 * 1024, 128 * 1024)]
    public void A_rent_is_at_least_the_size_asked_rounded_up_to_a_power_of_two(int asked, int length)
        => Assert.Equal(length, Run(() => HeadBuffers.Rent(asked)).Length);

    [Fact]
    public void A_returned_head_buffer_is_the_next_one_rented_on_that_thread()
        => Run(() =>
        {
            var first = HeadBuffers.Rent(1500);
            HeadBuffers.Return(first);
            Assert.Same(first, HeadBuffers.Rent(2000));
            Assert.NotSame(first, HeadBuffers.Rent(2000));   // the list is empty again: a new array
            var small = HeadBuffers.Rent(100);
            HeadBuffers.Return(small);
            Assert.NotSame(small, HeadBuffers.Rent(3000));   // sizes do not mix
            return 0;
        });

    /// <summary>A thread keeps its cap of each size; returns beyond it go to the shared pool, and come back from there.</summary>
    [Fact]
    public void Returns_beyond_a_threads_cap_go_to_the_shared_pool()
        => Run(() =>
        {
            var count = HeadBuffers.PerThreadPerSize + 10;
            var arrays = Enumerable.Range(0, count).Select(_ => HeadBuffers.Rent(1024)).ToList();
            foreach (var array in arrays)
            {
                HeadBuffers.Return(array);
            }
            var again = Enumerable.Range(0, count).Select(_ => HeadBuffers.Rent(1024)).ToList();
            // The first PerThreadPerSize come off the thread's own list, last returned first.
            Assert.Equal(arrays[..HeadBuffers.PerThreadPerSize].AsEnumerable().Reverse(), again[..HeadBuffers.PerThreadPerSize]);
            Assert.Equal(count, again.Count(a => arrays.Any(b => ReferenceEquals(a, b))));
            return 0;
        });

    /// <summary>
    /// Rented on one long-lived thread and returned on another, round after round (an exchange that
    /// ends on another loop): once the returning thread's list is full the arrays flow back through
    /// the shared pool, so only the first ones are new.
    /// </summary>
    [Fact]
    public void Buffers_that_cross_threads_are_reused_not_allocated()
    {
        using var renter = new Worker();
        using var returner = new Worker();
        var seen = new HashSet<byte[]>(ReferenceEqualityComparer.Instance);
        var rounds = 4 * HeadBuffers.PerThreadPerSize;
        for (var round = 0; round < rounds; round++)
        {
            var array = renter.Do(() => HeadBuffers.Rent(1500));
            seen.Add(array);
            returner.Do(() =>
            {
                HeadBuffers.Return(array);
                return 0;
            });
        }
        Assert.True(seen.Count <= HeadBuffers.PerThreadPerSize + 2, $"{seen.Count} distinct arrays over {rounds} cross-thread rounds");
    }

    /// <summary>One dedicated thread that runs what it is given, in order.</summary>
    private sealed class Worker : IDisposable
    {
        private readonly System.Collections.Concurrent.BlockingCollection<Action> _work = new();
        private readonly Thread _thread;

        public Worker()
        {
            _thread = new Thread(() =>
            {
                foreach (var item in _work.GetConsumingEnumerable())
                {
                    item();
                }
            });
            _thread.Start();
        }

        public T Do<T>(Func<T> body)
        {
            var done = new TaskCompletionSource<T>();
            _work.Add(() =>
            {
                try
                {
                    done.SetResult(body());
                }
                catch (Exception ex)
                {
                    done.SetException(ex);
                }
            });
            return done.Task.GetAwaiter().GetResult();
        }

        public void Dispose()
        {
            _work.CompleteAdding();
            _thread.Join();
            _work.Dispose();
        }
    }

    [Fact]
    public void Returns_on_another_thread_stay_on_that_thread()
    {
        var rented = Run(() => HeadBuffers.Rent(1024));
        Run(() =>
        {
            HeadBuffers.Return(rented);
            Assert.Same(rented, HeadBuffers.Rent(1024));
            return 0;
        });
    }

    /// <summary>On a fresh thread, so lists other tests filled do not interfere.</summary>
    private static T Run<T>(Func<T> body)
    {
        T result = default!;
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                result = body();
            }
            catch (Exception ex)
            {
                failure = ex;
            }
        });
        thread.Start();
        thread.Join();
        if (failure is not null)
        {
            throw new Xunit.Sdk.XunitException(failure.ToString());
        }
        return result;
    }
}
