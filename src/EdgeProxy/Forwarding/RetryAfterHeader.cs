using System.Globalization;

namespace EdgeProxy.Forwarding;

/// <summary>A backend's `Retry-After` (RFC 9110 §10.2.3): delay-seconds or an HTTP-date, read the same way on both paths.</summary>
internal static class RetryAfterHeader
{
    /// <summary>How long the backend asks to be left alone; null when the value is absent or not valid.</summary>
    public static TimeSpan? Parse(string? value, DateTimeOffset now)
    {
        value = value?.Trim();
        if (string.IsNullOrEmpty(value))
        {
            return null;
        }
        if (value.All(char.IsAsciiDigit))
        {
            return long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var seconds) && seconds <= int.MaxValue
                ? TimeSpan.FromSeconds(seconds) : null;
        }
        return DateTimeOffset.TryParseExact(value, "r", CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal, out var date)
            ? (date > now ? date - now : TimeSpan.Zero) : null;
    }
}
