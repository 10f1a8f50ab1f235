using EdgeProxy.Configuration;

namespace EdgeProxy.Health;

/// <summary>The health thresholds and timings shared by every backend (from <see cref="GatewaySettings"/>).</summary>
internal sealed record HealthPolicy
{
    public int UnhealthyThreshold { get; init; } = 2;

    public int HealthyThreshold { get; init; } = 1;

    public int PassiveFailureThreshold { get; init; } = 5;

    public TimeSpan EjectionBase { get; init; } = TimeSpan.FromSeconds(10);

    public TimeSpan EjectionMax { get; init; } = TimeSpan.FromSeconds(300);

    public double MaxEjectionPercent { get; init; } = 50;

    public TimeSpan SlowStart { get; init; } = TimeSpan.FromSeconds(30);

    public static HealthPolicy From(GatewaySettings s) => new()
    {
        UnhealthyThreshold = s.UnhealthyThreshold,
        HealthyThreshold = s.HealthyThreshold,
        PassiveFailureThreshold = s.PassiveFailureThreshold,
        EjectionBase = s.EjectionBase,
        EjectionMax = s.EjectionMax,
        MaxEjectionPercent = s.MaxEjectionPercent,
        SlowStart = s.SlowStart,
    };
}

/// <summary>Active health as the contract names it.</summary>
internal enum HealthStatus
{
    Unknown = 0,
    Healthy = 1,
    Unhealthy = 2,
}
