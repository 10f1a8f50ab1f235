using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace EdgeProxy.Forwarding;

/// <summary>
/// The one JSON error shape the gateway answers with. `error` follows the OpenAI error object so
/// SDK clients surface the message; `detail` keeps the replaced FastAPI product's shape.
/// </summary>
internal static class ErrorResponses
{
    /// <param name="retryAfterSeconds">The `Retry-After` header's value, for "busy, retry later" answers (<see cref="ForwarderErrors.RetryAfterSeconds"/>).</param>
    public static Task WriteAsync(HttpContext context, int status, string code, string message, int? retryAfterSeconds = null)
    {
        var response = context.Response;
        if (response.HasStarted)
        {
            return Task.CompletedTask;
        }
        response.StatusCode = status;
        response.ContentType = "application/json; charset=utf-8";
        response.Headers.CacheControl = "no-store";
        if (retryAfterSeconds is int seconds)
        {
            response.Headers.RetryAfter = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        if (HttpMethods.IsHead(context.Request.Method))
        {
            return Task.CompletedTask;
        }
        var requestId = response.Headers[RequestIds.HeaderName];
        var body = Body(status, code, message, requestId.Count == 1 ? requestId[0] : null);
        response.ContentLength = body.Length;
        return response.Body.WriteAsync(body).AsTask();
    }

    /// <summary>The JSON body of an error (also written by the HTTP/1.1 fast path, which has no HttpContext).</summary>
    public static byte[] Body(int status, string code, string message, string? requestId)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            writer.WriteStartObject();
            writer.WriteStartObject("error");
            writer.WriteString("message", message);
            writer.WriteString("type", TypeFor(status));
            writer.WriteString("code", code);
            writer.WriteEndObject();
            writer.WriteString("detail", message);
            if (requestId is not null)
            {
                writer.WriteString("request_id", requestId);
            }
            writer.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    private static string TypeFor(int status) => status switch
    {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        405 => "invalid_request_error",
        413 => "invalid_request_error",
        429 => "rate_limit_error",
        400 => "invalid_request_error",
        503 => "service_unavailable",
        504 => "timeout_error",
        _ when status >= 500 => "upstream_error",
        _ => "invalid_request_error",
    };
}
