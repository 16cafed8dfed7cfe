"""apiserver_suite: one of e2e/apiserver's python suites as sh_tests."""

APISERVER = "//services/apiserver:keel-apiserver"

STORE = "//services/store:keel-store"

DESCRIPTORS = "//proto:api_descriptors.pb"

PY_DATA = [
    "apiserver_lib.py",
    APISERVER,
    DESCRIPTORS,
    "//e2e/testlib",
]

# A python suite (py_test.sh SUITE.py APISERVER DESCRIPTORS STORE_KIND STORE_BIN)
# against keel-store and, with etcd = True, against a real etcd as well.
def apiserver_suite(name, suite, etcd = False, timeout = "short", etcd_timeout = "short"):
    native.sh_test(
        name = name + "_keel_store",
        size = "medium",
        timeout = timeout,
        srcs = ["py_test.sh"],
        args = [
            suite,
            "$(location %s)" % APISERVER,
            "$(location %s)" % DESCRIPTORS,
            "keel-store",
            "$(location %s)" % STORE,
        ],
        data = PY_DATA + [
            suite,
            STORE,
        ],
        tags = ["e2e"],
    )
    if etcd:
        native.sh_test(
            name = name + "_etcd",
            size = "medium",
            timeout = etcd_timeout,
            srcs = ["py_test.sh"],
            args = [
                suite,
                "$(location %s)" % APISERVER,
                "$(location %s)" % DESCRIPTORS,
                "etcd",
                "/usr/bin/etcd",
            ],
            data = PY_DATA + [suite],
            tags = ["e2e"],
        )
