//! Hand-written `METH_FASTCALL | METH_KEYWORDS` methods for the hottest
//! calls (`Counter.inc`, `Histogram.record`, the pipeline handles' `start`,
//! `end` and `seen`). PyO3 parses arguments in generic code and wraps each
//! call in its trampoline, about half the cost of a one-line method; these
//! take the common arguments straight from CPython's array and send
//! everything else through [`args`], which parses as CPython does.

use core::ffi::CStr;

use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple, PyType};
use pyo3::PyClass;

/// `METH_FASTCALL`: CPython's value since 3.7; PyO3 names it only when the
/// limited API is 3.10 or later, and the abi3 wheel starts at 3.9.
const METH_FASTCALL: core::ffi::c_int = 0x0080;

/// A `METH_FASTCALL | METH_KEYWORDS` function (`PyCFunctionFastWithKeywords`).
pub(crate) type FastWithKeywords = unsafe extern "C" fn(
    *mut ffi::PyObject,
    *const *mut ffi::PyObject,
    ffi::Py_ssize_t,
    *mut ffi::PyObject,
) -> *mut ffi::PyObject;

/// Sets `ty.name` to a method descriptor calling `func` with `METH_FASTCALL |
/// METH_KEYWORDS`; the descriptor checks that `self` is a `ty` before calling.
/// `doc` starts with the signature line `inspect` reads.
pub(crate) fn add_raw_method(
    ty: &Bound<'_, PyType>,
    name: &'static CStr,
    func: FastWithKeywords,
    doc: &'static CStr,
) -> PyResult<()> {
    // SAFETY: the C idiom `(PyCFunction)(void (*)(void))func`: CPython calls
    // `ml_meth` with the signature its flags name (`METH_FASTCALL |
    // METH_KEYWORDS`: the one of `func`); both are plain function pointers.
    let meth = unsafe { core::mem::transmute::<FastWithKeywords, ffi::PyCFunction>(func) };
    let def = Box::leak(Box::new(ffi::PyMethodDef {
        ml_name: name.as_ptr(),
        ml_meth: ffi::PyMethodDefPointer { PyCFunction: meth },
        ml_flags: METH_FASTCALL | ffi::METH_KEYWORDS,
        ml_doc: doc.as_ptr(),
    }));
    // SAFETY: `ty` is a live type object and `def` lives for the rest of the
    // process (leaked), as the descriptor keeps a pointer to it.
    let descr = unsafe {
        Bound::from_owned_ptr_or_err(
            ty.py(),
            ffi::PyDescr_NewMethod(ty.as_type_ptr(), core::ptr::from_mut(def)),
        )?
    };
    ty.setattr(name.to_str().unwrap_or_default(), descr)
}

/// The arguments of a call `name(p0, p1, ...)` with parameters `params`, the
/// first `required` of them required, each by position or keyword: one
/// entry per parameter (`None` when not given). The errors are CPython's.
///
/// # Safety
///
/// As CPython calls a `METH_FASTCALL | METH_KEYWORDS` method: the thread
/// attached, `args` pointing to `nargs` positional arguments followed by one
/// value per name of the tuple `kwnames` (null when there is none).
#[cold]
pub(crate) unsafe fn args<'py, const N: usize>(
    py: Python<'py>,
    name: &str,
    params: [&str; N],
    required: usize,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> PyResult<[Option<Bound<'py, PyAny>>; N]> {
    let nargs = usize::try_from(nargs).unwrap_or(0);
    if nargs > N {
        let most = match N {
            0 => "no arguments".to_owned(),
            1 => "at most 1 argument".to_owned(),
            n => format!("at most {n} arguments"),
        };
        return Err(PyTypeError::new_err(format!(
            "{name}() takes {most} ({nargs} given)"
        )));
    }
    let mut out: [Option<Bound<'py, PyAny>>; N] = core::array::from_fn(|i| {
        // SAFETY: `args[i]` for `i < nargs` are live positional arguments.
        (i < nargs).then(|| unsafe { Bound::from_borrowed_ptr(py, *args.add(i)) })
    });
    if !kwnames.is_null() {
        // SAFETY: the contract: `kwnames` is a tuple of str.
        let kwnames = unsafe { Borrowed::from_ptr(py, kwnames).cast_unchecked::<PyTuple>() };
        for (i, key) in kwnames.iter().enumerate() {
            // SAFETY: the value of the `i`-th keyword follows the positionals.
            let value = unsafe { Bound::from_borrowed_ptr(py, *args.add(nargs + i)) };
            let slot = key
                .cast::<PyString>()
                .ok()
                .and_then(|k| params.iter().position(|p| k == *p));
            let Some(slot) = slot else {
                return Err(PyTypeError::new_err(format!(
                    "{name}() got an unexpected keyword argument {}",
                    key.repr()?
                )));
            };
            if out[slot].replace(value).is_some() {
                return Err(PyTypeError::new_err(format!(
                    "{name}() got multiple values for argument '{}'",
                    params[slot]
                )));
            }
        }
    }
    if let Some(missing) = (0..required).find(|&i| out[i].is_none()) {
        return Err(PyTypeError::new_err(format!(
            "{name}() missing 1 required positional argument: '{}'",
            params[missing]
        )));
    }
    Ok(out)
}

/// The attached thread's token and the `self` of a raw method of `T`.
///
/// # Safety
///
/// As CPython calls a method of a `T`: the thread attached and `slf` a live
/// `T` (the method descriptor checked its type) for as long as `'a`.
#[inline(always)]
pub(crate) unsafe fn receiver<'a, T>(slf: *mut ffi::PyObject) -> (Python<'a>, &'a T)
where
    T: PyClass<Frozen = pyo3::pyclass::boolean_struct::True> + Sync,
{
    // SAFETY: the contract.
    unsafe {
        let py = Python::assume_attached();
        (py, Borrowed::from_ptr(py, slf).cast_unchecked::<T>().get())
    }
}

/// Finishes a raw method: the result, or null with the error set.
pub(crate) fn finish(py: Python<'_>, result: PyResult<*mut ffi::PyObject>) -> *mut ffi::PyObject {
    result.unwrap_or_else(|e| {
        e.restore(py);
        core::ptr::null_mut()
    })
}

/// `arg` as an `i64` if it is exactly an `int` (not `bool`, not a subclass)
/// in `-2**63..2**63`; the exception state is left alone.
///
/// # Safety
///
/// `arg` is a live object and the thread is attached.
#[inline(always)]
pub(crate) unsafe fn exact_int(arg: *mut ffi::PyObject) -> Option<i64> {
    // SAFETY: the contract; `PyLong_Type` is CPython's static `int` type.
    unsafe {
        if ffi::Py_TYPE(arg) != core::ptr::addr_of_mut!(ffi::PyLong_Type) {
            return None;
        }
        let mut overflow: core::ffi::c_int = 0;
        // An exact int converts without error; out of range, `overflow` is set.
        let v = ffi::PyLong_AsLongLongAndOverflow(arg, &raw mut overflow);
        (overflow == 0).then_some(v)
    }
}

/// `arg` as an `f64` if it is exactly a `float`.
///
/// # Safety
///
/// `arg` is a live object and the thread is attached.
#[inline(always)]
pub(crate) unsafe fn exact_float(arg: *mut ffi::PyObject) -> Option<f64> {
    // SAFETY: the contract; an exact float converts without error.
    unsafe {
        (ffi::Py_TYPE(arg) == core::ptr::addr_of_mut!(ffi::PyFloat_Type))
            .then(|| ffi::PyFloat_AsDouble(arg))
    }
}

/// `None`, as a new reference.
pub(crate) fn none(py: Python<'_>, (): ()) -> *mut ffi::PyObject {
    py.None().into_ptr()
}
