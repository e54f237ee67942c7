package io.doppel.tools;

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
 * A CA and certificates signed by it, made with the openssl command line exactly as docs/operations.md
 * tells an operator to (EC P-256 keys, PKCS#8 PEM, key files 0600). Tests abort, saying so, without openssl.
 */
public final class TestCertificates
{
    private final Path dir;
    private final String caName;

    private TestCertificates(final Path dir, final String caName)
    {
        this.dir = dir;
        this.caName = caName;
    }

    /** Makes {@code dir/NAME-ca.pem} and its key. */
    public static TestCertificates newCa(final Path dir, final String name) throws Exception
    {
        Files.createDirectories(dir);
        final TestCertificates ca = new TestCertificates(dir, name);
        final Path key = ca.key(name + "-ca");
        openssl("req", "-x509", "-new", "-key", key.toString(), "-sha256", "-days", "30", "-subj", "/CN=" + name + " CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-out", ca.caCert().toString());
        return ca;
    }

    public Path caCert()
    {
        return dir.resolve(caName + "-ca.pem");
    }

    /**
     * A certificate for {@code cn} signed by this CA, for a server ({@code serverAuth}, SAN 127.0.0.1 and
     * localhost) and a client ({@code clientAuth}) both. Returns {cert, key}.
     */
    public Path[] issue(final String cn) throws Exception
    {
        final Path key = key(cn);
        final Path csr = dir.resolve(cn + ".csr");
        final Path cert = dir.resolve(cn + "-cert.pem");
        final Path ext = dir.resolve(cn + ".ext");
        Files.writeString(ext, String.join("\n",
            "basicConstraints=critical,CA:FALSE",
            "keyUsage=critical,digitalSignature,keyEncipherment",
            "extendedKeyUsage=serverAuth,clientAuth",
            "subjectAltName=DNS:" + cn + ",DNS:localhost,IP:127.0.0.1", ""));
        openssl("req", "-new", "-key", key.toString(), "-subj", "/CN=" + cn, "-out", csr.toString());
        openssl("x509", "-req", "-in", csr.toString(), "-CA", caCert().toString(), "-CAkey",
            dir.resolve(caName + "-ca-key.pem").toString(), "-CAcreateserial", "-days", "30", "-sha256",
            "-extfile", ext.toString(), "-out", cert.toString());
        return new Path[] {cert, key};
    }

    private Path key(final String name) throws Exception
    {
        final Path key = dir.resolve(name + "-key.pem");
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key.toString());
        Files.setPosixFilePermissions(key, PosixFilePermissions.fromString("rw-------"));
        return key;
    }

    private static void openssl(final String... args) throws Exception
    {
        final List<String> command = new ArrayList<>();
        command.add("openssl");
        command.addAll(List.of(args));
        final Process p;
        try
        {
            p = new ProcessBuilder(command).redirectErrorStream(true).start();
        }
        catch (final IOException e)
        {
            Assumptions.abort("SKIPPED: openssl is not installed (apt-get install openssl): " + e.getMessage());
            throw e;
        }
        final String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(30, TimeUnit.SECONDS) || p.exitValue() != 0)
        {
            throw new IOException(String.join(" ", command) + " failed: " + out);
        }
    }
}
