using EdgeProxy.Forwarding;
using Microsoft.Extensions.Logging.Abstractions;

namespace EdgeProxy.Tests.Unit.Forwarding;

/// <summary>The shutdown's one record: draining from the signal, the deadline SHUTDOWN_TIMEOUT later (fake clock).</summary>
public sealed class ShutdownDrainTests
{
    [Fact]
    public void Draining_starts_at_the_signal_and_the_deadline_fires_SHUTDOWN_TIMEOUT_later()
    {
        var time = UnitFixtures.Clock();
        using var drain = new ShutdownDrain(TimeSpan.FromSeconds(30), time, NullLogger.Instance);
        time.Advance(TimeSpan.FromHours(1));   // the deadline is armed by the signal, not at start
        Assert.False(drain.Draining);
        Assert.False(drain.Deadline.IsCancellationRequested);

        drain.Begin();
        Assert.True(drain.Draining);
        Assert.True(drain.Stopping.IsCancellationRequested);
        time.Advance(TimeSpan.FromSeconds(29.9));
        Assert.False(drain.Deadline.IsCancellationRequested);

        drain.Begin();   // a second signal (SIGINT after SIGTERM) does not re-arm the deadline
        time.Advance(TimeSpan.FromSeconds(0.1));
        Assert.True(drain.Deadline.IsCancellationRequested);
    }

    [Fact]
    public void The_host_waits_longer_than_SHUTDOWN_TIMEOUT_so_the_forwarders_end_what_is_open()
        => Assert.True(ShutdownDrain.HostTimeout(TimeSpan.FromSeconds(30)) > TimeSpan.FromSeconds(30));
}
