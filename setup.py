# Extensions are declared here because setuptools reads `cffi_modules` and
# `ext_modules` only through setup(); everything else lives in pyproject.toml.
import importlib.util
import os

from setuptools import setup
from setuptools.command.build_ext import build_ext


def _compiled_helper():
    # By path: importing the package would import its dependencies.
    spec = importlib.util.spec_from_file_location("_compiled", "stacks/_compiled.py")
    helper = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(helper)
    return helper


COMPILED = _compiled_helper()


def _package_dir(package, root=""):
    return os.path.join(root, *package.split("."))


def _compiled_core():
    """The UTCP core's modules as mypyc extensions, unless the pure build is asked for."""
    if os.environ.get(COMPILED.PURE_ENV):
        return []
    from mypyc.build import mypycify
    paths = [os.path.join(_package_dir(package), name + ".py")
             for package, names in COMPILED.COMPILED.items() for name in names]
    return mypycify(paths, group_name="stacks._utcp_core", opt_level="3")


class BuildExtWithManifest(build_ext):
    """Records which sources the compiled modules were built from, once they are built."""

    def run(self):
        root = "" if self.inplace else self.build_lib
        manifests = [os.path.join(_package_dir(package, root), COMPILED.MANIFEST)
                     for package in COMPILED.COMPILED]
        for manifest in manifests:
            if os.path.exists(manifest):
                os.unlink(manifest)
        super().run()
        if os.environ.get(COMPILED.PURE_ENV):
            return
        for (package, names), manifest in zip(COMPILED.COMPILED.items(), manifests):
            digest = COMPILED.source_digest(_package_dir(package), names)
            os.makedirs(os.path.dirname(manifest), exist_ok=True)
            with open(manifest, "w") as out:
                out.write(digest + "\n")


setup(cffi_modules=["multistack/native/build.py:ffibuilder",
                    "multistack/xdp_native/build.py:ffibuilder"],
      ext_modules=_compiled_core(),
      cmdclass={"build_ext": BuildExtWithManifest})
