package io.doppel.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.assertj.core.api.Assertions.assertThat;

/** {@code doppel demo} end to end (small image, short write phase): exit 0 and two equal printed hashes. */
class DemoCommandTest
{
    @TempDir
    Path dir;

    @Test
    void demoEndsWithTwoEqualHashes()
    {
        final PrintStream old = System.out;
        final ByteArrayOutputStream out = new ByteArrayOutputStream();
        final int code;
        try
        {
            System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
            code = DoppelCli.execute("demo", "--size", "32MiB", "--seconds", "2", "--dir", dir.toString());
        }
        finally
        {
            System.setOut(old);
        }
        final String text = out.toString(StandardCharsets.UTF_8);
        assertThat(code).as(text).isZero();
        final Matcher m = Pattern.compile("xxh3-128 ([0-9a-f]{32})").matcher(text);
        assertThat(m.find()).as(text).isTrue();
        final String primary = m.group(1);
        assertThat(m.find()).as(text).isTrue();
        assertThat(m.group(1)).isEqualTo(primary);
        assertThat(text).contains("OK: the standby is identical to the primary");
    }
}
