//! drove's attribute macros, re-exported by the `drove` crate.
//!
//! - [`macro@remote`]: `#[drove::remote] async fn transcode(video: Video)
//!   -> Result<String, E>` turns the function into a unit value of the same
//!   name that implements `drove::pool::RemoteFn`, and registers it in the
//!   process's function table under a stable name, so a runner pool can
//!   call it on another node of the same build: `pool.call(transcode,
//!   video)`.
//!
//! # Layout
//!
//! One file: parsing the function, then emitting the value, its
//! `RemoteFn` impl and its registration.

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::quote;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{FnArg, GenericArgument, ItemFn, LitStr, PathArguments, ReturnType, Token, Type};

/// Registers an `async fn` as a remote function.
///
/// The function takes its arguments as one serde value, optionally after a
/// `drove::pool::Ctx` (the runner's node and services), and returns
/// `Result<T, E>` where `T` is serde and `E: Display`:
///
/// ```ignore
/// #[drove::remote]
/// async fn transcode(video: Video) -> Result<String, TranscodeError> { .. }
///
/// #[drove::remote(name = "thumbs.resize.v1")]
/// async fn resize(ctx: drove::pool::Ctx, job: Resize) -> Result<(), String> { .. }
/// ```
///
/// The stable name is `name = "..."` if given, else the module path and the
/// function's name; it must not change between a parent and its runners.
#[proc_macro_attribute]
pub fn remote(attr: TokenStream, item: TokenStream) -> TokenStream {
    match expand(attr.into(), item.into()) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn expand(
    attr: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
) -> syn::Result<proc_macro2::TokenStream> {
    let name = stable_name(attr)?;
    let func: ItemFn = syn::parse2(item)?;
    let sig = &func.sig;
    if sig.asyncness.is_none() {
        return Err(syn::Error::new_spanned(
            sig.fn_token,
            "a remote function must be async",
        ));
    }
    if !sig.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &sig.generics,
            "a remote function cannot be generic: its name and types must be fixed",
        ));
    }
    let params: Vec<&Type> = sig
        .inputs
        .iter()
        .map(|arg| match arg {
            FnArg::Typed(t) => Ok(&*t.ty),
            FnArg::Receiver(r) => Err(syn::Error::new_spanned(
                r,
                "a remote function takes no self",
            )),
        })
        .collect::<syn::Result<_>>()?;
    let (takes_ctx, args_ty) = match params.as_slice() {
        [] => (false, syn::parse_quote!(())),
        [args] => (false, (*args).clone()),
        [_ctx, args] => (true, (*args).clone()),
        _ => {
            return Err(syn::Error::new_spanned(
                &sig.inputs,
                "a remote function takes (args) or (ctx: drove::pool::Ctx, args); put several values in a struct or tuple",
            ))
        }
    };
    let (ok_ty, err_ty) = result_types(&sig.output)?;
    let vis = &func.vis;
    let ident = &sig.ident;
    let attrs = &func.attrs;
    let inputs = &sig.inputs;
    let output = &sig.output;
    let body = &func.block;
    let stable = match name {
        Some(n) => quote!(#n),
        None => {
            let fn_name = LitStr::new(&ident.to_string(), Span::call_site());
            quote!(::core::concat!(::core::module_path!(), "::", #fn_name))
        }
    };
    let call = match (takes_ctx, params.len()) {
        (true, _) => quote!(__drove_body(ctx, args).await),
        (false, 0) => quote!({
            let () = args;
            let _ = ctx;
            __drove_body().await
        }),
        (false, _) => quote!({
            let _ = ctx;
            __drove_body(args).await
        }),
    };
    Ok(quote! {
        #(#attrs)*
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Debug)]
        #vis struct #ident;

        impl ::drove::pool::RemoteFn for #ident {
            const NAME: &'static str = #stable;
            type Args = #args_ty;
            type Output = #ok_ty;
            type Error = #err_ty;

            async fn run(
                ctx: ::drove::pool::Ctx,
                args: Self::Args,
            ) -> ::core::result::Result<Self::Output, Self::Error> {
                async fn __drove_body(#inputs) #output #body
                #call
            }
        }

        ::drove::pool::inventory::submit! {
            ::drove::pool::FnEntry::of::<#ident>()
        }
    })
}

/// `name = "..."`, if the attribute gives one.
fn stable_name(attr: proc_macro2::TokenStream) -> syn::Result<Option<LitStr>> {
    if attr.is_empty() {
        return Ok(None);
    }
    let pairs = Punctuated::<syn::MetaNameValue, Token![,]>::parse_terminated.parse2(attr)?;
    let mut name = None;
    for pair in pairs {
        if !pair.path.is_ident("name") {
            return Err(syn::Error::new_spanned(
                pair.path,
                "the only option is name = \"...\"",
            ));
        }
        match pair.value {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => name = Some(s),
            other => {
                return Err(syn::Error::new_spanned(
                    other,
                    "name takes a string literal",
                ))
            }
        }
    }
    Ok(name)
}

/// `T` and `E` of a `-> Result<T, E>` return type.
fn result_types(output: &ReturnType) -> syn::Result<(Type, Type)> {
    let complain = |span: &dyn quote::ToTokens| {
        syn::Error::new_spanned(
            span,
            "a remote function returns Result<T, E>, with both types written out",
        )
    };
    let ReturnType::Type(_, ty) = output else {
        return Err(syn::Error::new(
            Span::call_site(),
            "a remote function returns Result<T, E>",
        ));
    };
    let Type::Path(path) = &**ty else {
        return Err(complain(ty));
    };
    let last = path.path.segments.last().ok_or_else(|| complain(ty))?;
    let PathArguments::AngleBracketed(generic) = &last.arguments else {
        return Err(complain(ty));
    };
    let types: Vec<&Type> = generic
        .args
        .iter()
        .filter_map(|a| match a {
            GenericArgument::Type(t) => Some(t),
            _ => None,
        })
        .collect();
    match (last.ident == "Result", types.as_slice()) {
        (true, [ok, err]) => Ok(((*ok).clone(), (*err).clone())),
        _ => Err(complain(ty)),
    }
}
