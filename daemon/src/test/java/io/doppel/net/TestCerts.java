package io.doppel.net;

import org.junit.jupiter.api.Assumptions;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Makes real keys with the real openssl, the way docs/operations.md tells operators to: a CA (EC P-256), node
 * certificates signed by it (CN and DNS SAN = node name, serverAuth + clientAuth), self-signed certificates
 * for pinning, and PSK files. Tests that need it skip, saying so, when openssl is not installed.
 */
public final class TestCerts
{
    private final Path dir;

    public TestCerts(final Path dir) throws IOException
    {
        this.dir = Files.createDirectories(dir);
    }

    /** Skips the calling test when openssl is absent. */
    public static void assumeOpenssl()
    {
        boolean found;
        try
        {
            found = new ProcessBuilder("openssl", "version").redirectErrorStream(true).start().waitFor() == 0;
        }
        catch (final IOException | InterruptedException e)
        {
            found = false;
        }
        Assumptions.assumeTrue(found, "openssl not installed (apt-get install openssl): skipping the TLS test");
    }

    /** A CA named {@code name}: {@code name.pem} and {@code name.key}. */
    public Path ca(final String name) throws IOException
    {
        run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", dir.resolve(name + ".key").toString(), "-out", dir.resolve(name + ".pem").toString(),
            "-days", "2", "-subj", "/CN=" + name,
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign");
        return dir.resolve(name + ".pem");
    }

    /** A certificate for node {@code node} signed by CA {@code ca}: returns {@code [cert, key]}. */
    public Path[] node(final String node, final String ca, final String fileName) throws IOException
    {
        final Path key = dir.resolve(fileName + ".key");
        final Path csr = dir.resolve(fileName + ".csr");
        final Path cert = dir.resolve(fileName + ".pem");
        final Path ext = dir.resolve(fileName + ".ext");
        // localhost and 127.0.0.1 too: QEMU's NBD client checks the server's certificate against the host it dials
        Files.writeString(ext, "subjectAltName=DNS:" + node + ",DNS:localhost,IP:127.0.0.1\n"
            + "extendedKeyUsage=serverAuth,clientAuth\n"
            + "keyUsage=critical,digitalSignature\n");
        run("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", key.toString(), "-out", csr.toString(), "-subj", "/CN=" + node);
        run("openssl", "x509", "-req", "-in", csr.toString(), "-CA", dir.resolve(ca + ".pem").toString(),
            "-CAkey", dir.resolve(ca + ".key").toString(), "-CAcreateserial", "-out", cert.toString(), "-days", "2",
            "-extfile", ext.toString());
        return new Path[] {cert, key};
    }

    /** A self-signed certificate for node {@code node} (for pinning): returns {@code [cert, key]}. */
    public Path[] selfSigned(final String node, final String fileName) throws IOException
    {
        final Path key = dir.resolve(fileName + ".key");
        final Path cert = dir.resolve(fileName + ".pem");
        run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", key.toString(), "-out", cert.toString(), "-days", "2", "-subj", "/CN=" + node,
            "-addext", "subjectAltName=DNS:" + node, "-addext", "extendedKeyUsage=serverAuth,clientAuth");
        return new Path[] {cert, key};
    }

    /** {@code openssl x509 -fingerprint -sha256} of a certificate, as openssl prints it (with colons). */
    public String fingerprint(final Path cert) throws IOException
    {
        final String out = run("openssl", "x509", "-in", cert.toString(), "-noout", "-fingerprint", "-sha256");
        return out.substring(out.indexOf('=') + 1).trim();
    }

    /** A PSK file made as the docs say ({@code openssl rand -hex 32}), mode 600. */
    public Path psk(final String fileName) throws IOException
    {
        final Path file = dir.resolve(fileName);
        Files.writeString(file, run("openssl", "rand", "-hex", "32"));
        Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("rw-------"));
        return file;
    }

    private static String run(final String... command) throws IOException
    {
        final Process p = new ProcessBuilder(List.of(command)).redirectErrorStream(true).start();
        final String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        try
        {
            if (!p.waitFor(30, TimeUnit.SECONDS) || p.exitValue() != 0)
            {
                throw new IOException(String.join(" ", command) + " failed: " + out);
            }
        }
        catch (final InterruptedException e)
        {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted", e);
        }
        return out;
    }

    /** Lines of a captured log that contain every one of {@code parts}. */
    public static List<String> lines(final String log, final String... parts)
    {
        final List<String> out = new ArrayList<>();
        for (final String line : log.split("\n"))
        {
            boolean all = true;
            for (final String part : parts)
            {
                all &= line.contains(part);
            }
            if (all)
            {
                out.add(line);
            }
        }
        return out;
    }
}
