"""What the firmware tests' MicroPython snippets share: check() records a failure, prints it
and goes on, so one run reports every failure; the snippet ends with
print('fails', len(fails)) and the test asserts 'fails 0'."""

fails = []


def check(cond, what):
    if not cond:
        fails.append(what)
        print('FAIL', what)
